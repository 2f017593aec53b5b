/**
 * The extension's commands. Scans and fixes run as server requests with their progress shown in
 * a cancellable notification; cancelling it cancels the request, which aborts the engine job.
 * Every message that reports a problem carries the action that fixes it.
 */
import { randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { LSPErrorCodes, ResponseError, WorkDoneProgress, type LanguageClient } from 'vscode-languageclient/node';
import { ClientCommands, FixOffersRequest, FixRequest, OUTLINE_SCHEME, ScanRequest, type ApplyFixArgs, type FixSummary, type ScanSummary } from '../../protocol/lsp';
import { fixTitle } from '../../protocol/fix-names';
import { failureLine, limitSetting } from '../../protocol/verdict-text';
import { chooseCleanData } from './data-picker';
import { checkpointOfOutline, outlineUriOf } from './outline-documents';
import { REPORT_VIEW_TYPE } from './report-editor';

const CHECKPOINT_GLOB = '**/*.{onnx,pt,pth,safetensors}';
/** The engine's settings file (engine/config.ts), named here so the client does not bundle the engine. */
const CONFIG_FILE = 'backdoor-lens.json';

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

const isCheckpoint = (uri: vscode.Uri) => /\.(onnx|pt|pth|safetensors)$/i.test(uri.path);

/** The checkpoint the active editor shows (report view, outline or the file itself), if any. */
export function activeCheckpoint(): vscode.Uri | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (input instanceof vscode.TabInputCustom && input.viewType === REPORT_VIEW_TYPE) return input.uri;
  if (input instanceof vscode.TabInputText) {
    if (input.uri.scheme === OUTLINE_SCHEME) return checkpointOfOutline(input.uri);
    if (isCheckpoint(input.uri)) return input.uri;
  }
  const doc = vscode.window.activeTextEditor?.document.uri;
  if (doc?.scheme === OUTLINE_SCHEME) return checkpointOfOutline(doc);
  return doc && isCheckpoint(doc) ? doc : undefined;
}

/** The checkpoint a command is about: its argument, the active editor's file, or one the user picks. */
async function targetCheckpoint(arg: unknown, placeHolder = 'Checkpoint to scan for a backdoor'): Promise<vscode.Uri | undefined> {
  if (arg instanceof vscode.Uri) return arg.scheme === OUTLINE_SCHEME ? checkpointOfOutline(arg) : arg;
  if (typeof arg === 'string') return vscode.Uri.parse(arg);
  const active = activeCheckpoint();
  if (active) return active;
  const files = await vscode.workspace.findFiles(CHECKPOINT_GLOB, '**/node_modules/**', 500);
  if (files.length === 0) {
    void vscode.window.showWarningMessage('Backdoor Lens: no checkpoint (.onnx, .pt, .pth, .safetensors) in this workspace.', 'Open Folder…').then((c) => {
      if (c) void vscode.commands.executeCommand('workbench.action.files.openFolder');
    });
    return undefined;
  }
  const picked = await vscode.window.showQuickPick(
    files.map((f) => ({ label: basename(f.fsPath), description: vscode.workspace.asRelativePath(f), uri: f })),
    { placeHolder },
  );
  return picked?.uri;
}

export class Commands {
  constructor(
    private readonly client: LanguageClient,
    private readonly showLog: () => void,
  ) {}

  register(context: vscode.ExtensionContext): void {
    context.subscriptions.push(
      vscode.commands.registerCommand(ClientCommands.scan, (arg?: unknown) => this.scanCommand(arg)),
      vscode.commands.registerCommand(ClientCommands.applyFix, (args?: ApplyFixArgs) => (args?.uri && args.method ? this.applyFix(args) : this.pickFix(args?.uri))),
      vscode.commands.registerCommand(ClientCommands.openReport, async (arg?: unknown) => {
        const uri = await targetCheckpoint(arg, 'Checkpoint whose report to open');
        if (uri) await this.openReport(uri);
      }),
      vscode.commands.registerCommand(ClientCommands.openOutline, async (arg?: unknown) => {
        const uri = await targetCheckpoint(arg, 'Checkpoint whose model outline to open');
        if (uri) await this.openOutline(uri);
      }),
      vscode.commands.registerCommand(ClientCommands.chooseData, (arg?: unknown) => this.chooseData(arg)),
      vscode.commands.registerCommand(ClientCommands.openFindingDoc, (code: string) => this.openFindingDoc(context, code)),
      vscode.commands.registerCommand(ClientCommands.showLog, () => this.showLog()),
      vscode.commands.registerCommand(ClientCommands.openConfig, (arg?: unknown) => this.openConfig(arg)),
    );
  }

  /**
   * The backdoor-lens.json a scan of the checkpoint reads (beside it, else at the workspace root),
   * where the load and memory limits are raised; an unsaved new one at the workspace root when there
   * is none, so nothing is written until the user saves.
   */
  private async openConfig(arg: unknown): Promise<void> {
    const checkpoint = arg instanceof vscode.Uri ? arg : typeof arg === 'string' ? vscode.Uri.parse(arg) : vscode.window.activeTextEditor?.document.uri;
    const folder = (checkpoint && vscode.workspace.getWorkspaceFolder(checkpoint)) ?? vscode.workspace.workspaceFolders?.[0];
    const candidates = [...(checkpoint?.scheme === 'file' ? [vscode.Uri.joinPath(checkpoint, '..', CONFIG_FILE)] : []), ...(folder ? [vscode.Uri.joinPath(folder.uri, CONFIG_FILE)] : [])];
    for (const c of candidates) {
      const exists = await vscode.workspace.fs.stat(c).then(
        () => true,
        () => false,
      );
      if (exists) {
        await vscode.window.showTextDocument(c, { preview: false });
        return;
      }
    }
    const target = candidates.at(-1);
    if (!target) {
      void vscode.window.showErrorMessage(`Backdoor Lens: open a folder to create ${CONFIG_FILE} in it.`);
      return;
    }
    const doc = await vscode.workspace.openTextDocument(target.with({ scheme: 'untitled' }));
    const editor = await vscode.window.showTextDocument(doc, { preview: false });
    if (doc.getText() === '') await editor.insertSnippet(new vscode.SnippetString('{\n  "limits": {\n    "maxModelBytes": ${1:4294967296}\n  }\n}\n'));
  }

  async openOutline(checkpoint: vscode.Uri): Promise<void> {
    const doc = await vscode.workspace.openTextDocument(outlineUriOf(checkpoint));
    await vscode.window.showTextDocument(doc, { preview: false });
  }

  openReport(checkpoint: vscode.Uri): Thenable<unknown> {
    return vscode.commands.executeCommand('vscode.openWith', checkpoint, REPORT_VIEW_TYPE);
  }

  /** A finding code's page, rendered (the Markdown preview), not its source. */
  private async openFindingDoc(context: vscode.ExtensionContext, code: string): Promise<void> {
    if (!/^BL\d{3}$/.test(code)) return;
    const page = vscode.Uri.joinPath(context.extensionUri, 'docs', 'findings', `${code}.md`);
    await vscode.commands.executeCommand('markdown.showPreview', page);
  }

  /** Picks clean data for the scans, then scans the checkpoint again with it. */
  private async chooseData(arg: unknown): Promise<void> {
    const checkpoint = arg === undefined ? activeCheckpoint() : await targetCheckpoint(arg);
    const chosen = await chooseCleanData(checkpoint);
    if (!chosen) return;
    vscode.window.setStatusBarMessage(`Backdoor Lens: backdoorLens.data = ${chosen}`, 5000);
    if (checkpoint) await this.scanCommand(checkpoint);
  }

  private async scanCommand(arg: unknown): Promise<ScanSummary | undefined> {
    const uri = await targetCheckpoint(arg);
    if (!uri) return undefined;
    let summary: ScanSummary | undefined;
    try {
      summary = await this.scan(uri, true);
    } catch (e) {
      this.errorToast(`Backdoor Lens: the scan of ${basename(uri.fsPath)} failed: ${e instanceof Error ? e.message : String(e)}`, uri);
      return undefined;
    }
    if (summary) this.scanToast(uri, summary);
    return summary;
  }

  /** The outcome of a scan, with the action that comes next. */
  private scanToast(uri: vscode.Uri, summary: ScanSummary): void {
    const name = basename(uri.fsPath);
    const act = (choice: string | undefined) => {
      if (choice === 'Open Report') void this.openReport(uri);
      else if (choice === 'Show Outline') void this.openOutline(uri);
      else if (choice === 'Choose Clean Data…') void this.chooseData(uri);
      else if (choice === 'Fix…') void this.pickFix(uri.toString());
    };
    if (summary.status === 'failed') {
      const line = failureLine({ code: summary.error?.code ?? 'failed', message: summary.message, file: summary.error?.file }, uri.fsPath);
      this.errorToast(`Backdoor Lens: ${line.includes(name) ? line : `${name}: ${line}`}`, uri, summary.error);
    } else if (summary.verdict === 'backdoored') {
      void vscode.window.showWarningMessage(`Backdoor Lens: ${name}: ${summary.message}`, 'Fix…', 'Show Outline', 'Open Report').then(act);
    } else if (summary.noData) {
      void vscode.window.showInformationMessage(`Backdoor Lens: ${name}: ${summary.message}. The report shows the data-free analyses.`, 'Choose Clean Data…', 'Open Report').then(act);
    } else {
      void vscode.window.showInformationMessage(`Backdoor Lens: ${name}: ${summary.message}`, 'Open Report').then(act);
    }
  }

  /** An error, with the action that addresses it: pick other data, raise the limit, or read the log. */
  private errorToast(message: string, checkpoint: vscode.Uri | undefined, error?: { code: string; file?: string }): void {
    const dataProblem = error?.code === 'bad-data' || (!!error?.file && !!checkpoint && error.file !== checkpoint.fsPath);
    const setting = error?.code === 'limit' ? limitSetting(message) : undefined;
    const raise = setting === 'backdoorLens.timeLimitSeconds' ? ['Raise Time Limit…'] : setting ? [`Raise ${setting}…`] : [];
    const actions = [...(dataProblem ? ['Choose Clean Data…'] : []), ...raise, ...(error?.code === 'unsupported-model' ? ['Open Settings'] : []), 'Show Log'];
    void vscode.window.showErrorMessage(message, ...actions).then((choice) => {
      if (choice === 'Choose Clean Data…') void this.chooseData(checkpoint);
      else if (choice === 'Raise Time Limit…') void vscode.commands.executeCommand('workbench.action.openSettings', 'backdoorLens.timeLimitSeconds');
      else if (choice && raise.includes(choice)) void this.openConfig(checkpoint);
      else if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'backdoorLens');
      else if (choice === 'Show Log') this.showLog();
    });
  }

  scan(uri: vscode.Uri, force: boolean): Thenable<ScanSummary | undefined> {
    return withServerProgress(this.client, `Backdoor Lens: scanning ${basename(uri.fsPath)}`, (workDoneToken, cancel) =>
      this.client.sendRequest(ScanRequest, { uri: uri.toString(), force, workDoneToken }, cancel),
    );
  }

  /** "Apply Fix…" from the palette: the fixes for the active checkpoint's last scan, each with its expected effect and cost. */
  private async pickFix(uriArg?: string): Promise<FixSummary | undefined> {
    const uri = await targetCheckpoint(uriArg, 'Checkpoint to fix');
    if (!uri) return undefined;
    const offers = await this.client.sendRequest(FixOffersRequest, { uri: uri.toString() });
    const items = offers.map((o) => ({
      label: o.helps ? o.title : `$(circle-slash) ${o.title}`,
      detail: o.disabled ?? o.why,
      id: o.id,
      usable: !o.disabled,
    }));
    if (!items.length) {
      void vscode.window.showInformationMessage(`Backdoor Lens: no fix applies to ${basename(uri.fsPath)}.`);
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(items, { placeHolder: `Fix ${basename(uri.fsPath)} — fixes that act on the last scan's findings first`, matchOnDetail: true });
    if (!picked) return undefined;
    if (!picked.usable) {
      const needsData = /data/.test(picked.detail ?? '');
      void vscode.window.showWarningMessage(`Backdoor Lens: ${fixTitle(picked.id)} cannot run: ${picked.detail}`, ...(needsData ? ['Choose Clean Data…'] : [])).then((c) => {
        if (c) void this.chooseData(uri);
      });
      return undefined;
    }
    return this.applyFix({ uri: uri.toString(), method: picked.id });
  }

  /** Applies a fix, opens the written model in the report view (before and after) and scans it. */
  async applyFix(args: ApplyFixArgs): Promise<FixSummary | undefined> {
    const source = vscode.Uri.parse(args.uri);
    let summary: FixSummary | undefined;
    try {
      summary = await withServerProgress(this.client, `Backdoor Lens: ${fixTitle(args.method)} on ${basename(source.fsPath)}`, (workDoneToken, cancel) =>
        this.client.sendRequest(FixRequest, { ...args, workDoneToken }, cancel),
      );
    } catch (e) {
      const data = e instanceof ResponseError ? (e.data as { code?: string; file?: string } | undefined) : undefined;
      this.errorToast(`Backdoor Lens: ${fixTitle(args.method)} failed: ${e instanceof Error ? e.message : String(e)}`, source, data?.code ? { code: data.code, file: data.file } : undefined);
      return undefined;
    }
    if (!summary) return undefined;
    const written = summary.outputs.map((u) => basename(vscode.Uri.parse(u).fsPath)).join(' and ');
    const message = `Backdoor Lens: ${summary.headline}${written ? `. Wrote ${written}.` : '. Nothing written.'}`;
    // Only a removal is good news; a partial or failed fix is a warning with its numbers.
    const show = summary.outcome === 'removed' ? vscode.window.showInformationMessage : vscode.window.showWarningMessage;
    const out = summary.outputs.length ? vscode.Uri.parse(summary.outputs[0]) : undefined;
    void show(message, ...(out ? ['Compare'] : []), 'Show Log').then((c) => {
      if (c === 'Compare' && out) void this.openReport(out);
      else if (c === 'Show Log') this.showLog();
    });
    if (!out) return summary;
    await this.openReport(out);
    await this.scan(out, false);
    return summary;
  }
}
