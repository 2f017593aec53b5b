/** Backdoor Lens for VS Code: starts the language server and registers the commands and views. */
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { ReportChangedNotification } from '../../protocol/lsp';
import { CheckpointStatus } from './checkpoint-status';
import { Commands } from './commands';
import { createLanguageClient } from './language-client';
import { OutlineDocuments } from './outline-documents';
import { ReportEditor } from './report-editor';

let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  client = createLanguageClient(context);
  const c = client;
  const outlines = new OutlineDocuments(client);
  const reports = new ReportEditor(context, client);
  const status = new CheckpointStatus();
  outlines.register(context);
  reports.register();
  status.register(context);
  new Commands(client, () => c.outputChannel.show(true)).register(context);
  context.subscriptions.push(
    client.onNotification(ReportChangedNotification, (change) => {
      const checkpoint = vscode.Uri.parse(change.uri);
      status.update(change);
      outlines.checkpointChanged(checkpoint);
      void reports.refresh(checkpoint);
    }),
  );
  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
