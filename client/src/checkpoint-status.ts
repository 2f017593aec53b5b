/**
 * What the editor shows about checkpoints outside their views: a status bar item with the scan in
 * progress or the last verdict of the active model, and a decoration for files that could not be
 * scanned (their own mark, not the red of a detected backdoor, which comes with the error diagnostic).
 */
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { ClientCommands, type CheckpointChange } from '../../protocol/lsp';
import { activeCheckpoint } from './commands';

export class CheckpointStatus implements vscode.FileDecorationProvider {
  private readonly states = new Map<string, CheckpointChange>();
  private readonly item = vscode.window.createStatusBarItem('backdoorLens.status', vscode.StatusBarAlignment.Left, 50);
  private readonly decorationsChanged = new vscode.EventEmitter<vscode.Uri[]>();
  readonly onDidChangeFileDecorations = this.decorationsChanged.event;
  /** The checkpoint being scanned, shown even when another editor is active. */
  private scanning?: string;

  register(context: vscode.ExtensionContext): void {
    this.item.name = 'Backdoor Lens';
    context.subscriptions.push(
      this.item,
      this.decorationsChanged,
      vscode.window.registerFileDecorationProvider(this),
      vscode.window.tabGroups.onDidChangeTabs(() => this.render()),
      vscode.window.tabGroups.onDidChangeTabGroups(() => this.render()),
      vscode.window.onDidChangeActiveTextEditor(() => this.render()),
    );
    this.render();
  }

  update(change: CheckpointChange): void {
    const key = vscode.Uri.parse(change.uri).toString();
    const before = this.states.get(key);
    this.states.set(key, change);
    if (change.status === 'scanning' || change.status === 'queued') this.scanning = key;
    else if (this.scanning === key) this.scanning = undefined;
    if (before?.status !== change.status) this.decorationsChanged.fire([vscode.Uri.parse(change.uri)]);
    this.render();
  }

  provideFileDecoration(uri: vscode.Uri): vscode.FileDecoration | undefined {
    const s = this.states.get(uri.toString());
    if (s?.status !== 'failed') return undefined;
    return new vscode.FileDecoration('?', `Backdoor Lens could not scan this file: ${s.summary ?? 'see the Problems panel'}`, new vscode.ThemeColor('backdoorLens.unscannedForeground'));
  }

  private render(): void {
    const active = activeCheckpoint()?.toString();
    const key = this.scanning ?? active;
    const s = key ? this.states.get(key) : undefined;
    if (!key || (!s && key !== active)) {
      this.item.hide();
      return;
    }
    const name = basename(vscode.Uri.parse(key).fsPath);
    const item = this.item;
    item.command = { title: 'Open Report', command: ClientCommands.openReport, arguments: [vscode.Uri.parse(key)] };
    item.backgroundColor = undefined;
    if (!s || s.status === 'not-scanned' || s.status === 'stale') {
      item.text = `$(shield) ${name}: not scanned`;
      item.tooltip = 'Backdoor Lens: scan this checkpoint for a backdoor';
      item.command = { title: 'Scan for Backdoor', command: ClientCommands.scan, arguments: [vscode.Uri.parse(key)] };
    } else if (s.status === 'scanning' || s.status === 'queued') {
      item.text = `$(sync~spin) ${name}: ${s.summary ?? 'scanning'}`;
      item.tooltip = 'Backdoor Lens: scan in progress (open the report for its stages)';
    } else if (s.status === 'failed') {
      item.text = `$(question) ${name}: not scanned`;
      item.tooltip = s.summary;
      item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
      item.command = { title: 'Show Log', command: ClientCommands.showLog, arguments: [] };
    } else if (s.status === 'cancelled') {
      item.text = `$(shield) ${name}: scan cancelled`;
      item.tooltip = 'Backdoor Lens: scan it again to see its findings';
    } else if (s.verdict === 'backdoored') {
      item.text = `$(shield) ${name}: backdoor`;
      item.tooltip = s.summary;
      item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    } else if (s.verdict === 'clean') {
      item.text = `$(shield) ${name}: no backdoor found`;
      item.tooltip = s.summary;
    } else {
      item.text = `$(shield) ${name}: inconclusive`;
      item.tooltip = `${s.summary ?? ''}${s.noData ? ' — choose clean data for a detector verdict' : ''}`;
      if (s.noData) item.command = { title: 'Choose Clean Data…', command: ClientCommands.chooseData, arguments: [vscode.Uri.parse(key)] };
    }
    item.show();
  }
}
