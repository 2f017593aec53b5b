/**
 * The read-only model outline documents (backdoor-lens-outline:<checkpoint path>.outline): their
 * text comes from the server, and they refresh when the checkpoint's results change.
 */
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { OUTLINE_LANGUAGE, OUTLINE_SCHEME, OutlineRequest } from '../../protocol/lsp';

const SUFFIX = '.outline';

export function outlineUriOf(checkpoint: vscode.Uri): vscode.Uri {
  return vscode.Uri.from({ scheme: OUTLINE_SCHEME, path: `${checkpoint.path}${SUFFIX}` });
}

export function checkpointOfOutline(outline: vscode.Uri): vscode.Uri {
  return vscode.Uri.file(outline.path.endsWith(SUFFIX) ? outline.path.slice(0, -SUFFIX.length) : outline.path);
}

export class OutlineDocuments implements vscode.TextDocumentContentProvider {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly client: LanguageClient) {}

  register(context: vscode.ExtensionContext): void {
    context.subscriptions.push(
      vscode.workspace.registerTextDocumentContentProvider(OUTLINE_SCHEME, this),
      this.changed,
      vscode.workspace.onDidOpenTextDocument((doc) => {
        if (doc.uri.scheme === OUTLINE_SCHEME && doc.languageId !== OUTLINE_LANGUAGE) void vscode.languages.setTextDocumentLanguage(doc, OUTLINE_LANGUAGE);
      }),
    );
  }

  /** The checkpoint's results changed: open outlines re-read their text. */
  checkpointChanged(checkpoint: vscode.Uri): void {
    const outline = outlineUriOf(checkpoint);
    if (vscode.workspace.textDocuments.some((d) => d.uri.toString() === outline.toString())) this.changed.fire(outline);
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    return this.client.sendRequest(OutlineRequest, { uri: uri.toString() });
  }
}
