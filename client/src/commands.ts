/**
 * The extension's commands. Scans and fixes run as server requests with their progress shown in
 * a cancellable notification; cancelling it cancels the request, which aborts the engine job.
 */
import { randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { LSPErrorCodes, ResponseError, WorkDoneProgress, type LanguageClient } from 'vscode-languageclient/node';
import { ClientCommands, FixRequest, OUTLINE_SCHEME, ScanRequest, type ApplyFixArgs, type FixSummary, type ScanSummary } from '../../protocol/lsp';
import { checkpointOfOutline, outlineUriOf } from './outline-documents';
import { REPORT_VIEW_TYPE } from './report-editor';

const CHECKPOINT_GLOB = '**/*.{onnx,pt,pth,safetensors}';

export function fixTitle(method: string): string {
  if (method === 'auto') return 'Repair';
  if (method === 'bna') return 'Apply BNA correction';
  if (method === 'unlearn') return 'Unlearn the reversed trigger';
  return `Prune with ${method.toUpperCase()}`;
}

function isCancellation(e: unknown, token: vscode.CancellationToken): boolean {
  return token.isCancellationRequested || (e instanceof ResponseError && e.code === LSPErrorCodes.RequestCancelled);
}

/** Runs a server request under a notification that shows its work-done progress and can cancel it. */
function withServerProgress<T>(client: LanguageClient, title: string, run: (workDoneToken: string, cancel: vscode.CancellationToken) => Promise<T>): Thenable<T | undefined> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, cancel) => {
    const token = `backdoorLens/${randomUUID()}`;
    let shown = 0;
    const sub = client.onProgress(WorkDoneProgress.type, token, (value) => {
      if (value.kind === 'end') return;
      const percentage = value.percentage ?? shown;
      progress.report({ increment: Math.max(0, percentage - shown), message: value.message ? `${percentage}% — ${value.message}` : undefined });
      shown = Math.max(shown, percentage);
    });
    try {
      return await run(token, cancel);
    } catch (e) {
      if (isCancellation(e, cancel)) {
        void vscode.window.showInformationMessage(`${title}: cancelled`);
        return undefined;
      }
      throw e;
    } finally {
      sub.dispose();
    }
  });
}

/** The checkpoint a command is about: its argument, the active editor's file, or one the user picks. */
async function targetCheckpoint(arg: unknown): Promise<vscode.Uri | undefined> {
  if (arg instanceof vscode.Uri) return arg.scheme === OUTLINE_SCHEME ? checkpointOfOutline(arg) : arg;
  if (typeof arg === 'string') return vscode.Uri.parse(arg);
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (input instanceof vscode.TabInputCustom && input.viewType === REPORT_VIEW_TYPE) return input.uri;
  const doc = vscode.window.activeTextEditor?.document.uri;
  if (doc?.scheme === OUTLINE_SCHEME) return checkpointOfOutline(doc);
  if (doc && /\.(onnx|pt|pth|safetensors)$/i.test(doc.path)) return doc;
  const files = await vscode.workspace.findFiles(CHECKPOINT_GLOB, '**/node_modules/**', 500);
  if (files.length === 0) {
    void vscode.window.showWarningMessage('Backdoor Lens: no checkpoint (.onnx, .pt, .pth, .safetensors) in this workspace.');
    return undefined;
  }
  const picked = await vscode.window.showQuickPick(
    files.map((f) => ({ label: basename(f.fsPath), description: vscode.workspace.asRelativePath(f), uri: f })),
    { placeHolder: 'Checkpoint to scan for a backdoor' },
  );
  return picked?.uri;
}

export class Commands {
  constructor(private readonly client: LanguageClient) {}

  register(context: vscode.ExtensionContext): void {
    context.subscriptions.push(
      vscode.commands.registerCommand(ClientCommands.scan, (arg?: unknown) => this.scanCommand(arg)),
      vscode.commands.registerCommand(ClientCommands.applyFix, (args: ApplyFixArgs) => this.applyFix(args)),
      vscode.commands.registerCommand(ClientCommands.openReport, async (arg?: unknown) => {
        const uri = await targetCheckpoint(arg);
        if (uri) await vscode.commands.executeCommand('vscode.openWith', uri, REPORT_VIEW_TYPE);
      }),
      vscode.commands.registerCommand(ClientCommands.openOutline, async (arg?: unknown) => {
        const uri = await targetCheckpoint(arg);
        if (uri) await this.openOutline(uri);
      }),
    );
  }

  async openOutline(checkpoint: vscode.Uri): Promise<void> {
    const doc = await vscode.workspace.openTextDocument(outlineUriOf(checkpoint));
    await vscode.window.showTextDocument(doc, { preview: false });
  }

  private async scanCommand(arg: unknown): Promise<ScanSummary | undefined> {
    const uri = await targetCheckpoint(arg);
    if (!uri) return undefined;
    const summary = await this.scan(uri, true);
    if (!summary) return undefined;
    const name = basename(uri.fsPath);
    if (summary.status === 'failed') {
      void vscode.window.showErrorMessage(`Backdoor Lens: ${name} could not be scanned: ${summary.message}`);
    } else if (summary.verdict === 'backdoored') {
      void vscode.window.showWarningMessage(`Backdoor Lens: ${summary.message} in ${name}.`, 'Show Outline', 'Open Report').then((choice) => {
        if (choice === 'Show Outline') void this.openOutline(uri);
        if (choice === 'Open Report') void vscode.commands.executeCommand('vscode.openWith', uri, REPORT_VIEW_TYPE);
      });
    } else {
      void vscode.window.showInformationMessage(`Backdoor Lens: ${name}: ${summary.message}.`);
    }
    return summary;
  }

  scan(uri: vscode.Uri, force: boolean): Thenable<ScanSummary | undefined> {
    return withServerProgress(this.client, `Backdoor Lens: scanning ${basename(uri.fsPath)}`, (workDoneToken, cancel) =>
      this.client.sendRequest(ScanRequest, { uri: uri.toString(), force, workDoneToken }, cancel),
    );
  }

  /** Applies a fix, opens the purified model in the report view and scans it. */
  async applyFix(args: ApplyFixArgs): Promise<FixSummary | undefined> {
    let summary: FixSummary | undefined;
    try {
      summary = await withServerProgress(this.client, `Backdoor Lens: ${fixTitle(args.method)}`, (workDoneToken, cancel) =>
        this.client.sendRequest(FixRequest, { ...args, workDoneToken }, cancel),
      );
    } catch (e) {
      void vscode.window.showErrorMessage(`Backdoor Lens: ${fixTitle(args.method)} failed: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
    if (!summary) return undefined;
    const written = summary.outputs.map((u) => basename(vscode.Uri.parse(u).fsPath)).join(' and ');
    const message = `Backdoor Lens: ${summary.headline}${written ? `. Wrote ${written}.` : '. Nothing written.'}`;
    // Only a removal is good news; a partial or failed fix is a warning with its numbers.
    if (summary.outcome === 'removed') void vscode.window.showInformationMessage(message);
    else void vscode.window.showWarningMessage(message);
    if (summary.outputs.length === 0) return summary;
    const out = vscode.Uri.parse(summary.outputs[0]);
    await vscode.commands.executeCommand('vscode.openWith', out, REPORT_VIEW_TYPE);
    await this.scan(out, false);
    return summary;
  }
}
