/**
 * The model outline documents (backdoor-lens-outline:<checkpoint path>.outline): their text comes
 * from the server, and they refresh when the checkpoint's results change.
 *
 * They are served by a file system provider that is not read-only, because VS Code offers Quick
 * Fix (Ctrl+.) and the lightbulb only in writable editors, and the findings' fixes are code
 * actions there. The text is generated, so an edit is undone at once and a save writes nothing.
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

interface Entry {
  mtime: number;
  bytes?: Uint8Array;
}

export class OutlineDocuments implements vscode.FileSystemProvider {
  private readonly changed = new vscode.EventEmitter<vscode.FileChangeEvent[]>();
  readonly onDidChangeFile = this.changed.event;
  private readonly entries = new Map<string, Entry>();
  private reverting = new Set<string>();

  constructor(private readonly client: LanguageClient) {}

  register(context: vscode.ExtensionContext): void {
    context.subscriptions.push(
      vscode.workspace.registerFileSystemProvider(OUTLINE_SCHEME, this, { isCaseSensitive: true }),
      this.changed,
      vscode.workspace.onDidOpenTextDocument((doc) => {
        if (doc.uri.scheme === OUTLINE_SCHEME && doc.languageId !== OUTLINE_LANGUAGE) void vscode.languages.setTextDocumentLanguage(doc, OUTLINE_LANGUAGE);
      }),
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.document.uri.scheme === OUTLINE_SCHEME && e.contentChanges.length && e.document.isDirty) void this.discardEdits(e.document);
      }),
    );
  }

  /** The outline is generated from the checkpoint: put its text back. */
  private async discardEdits(doc: vscode.TextDocument): Promise<void> {
    const key = doc.uri.toString();
    if (this.reverting.has(key)) return;
    this.reverting.add(key);
    try {
      if (vscode.window.activeTextEditor?.document.uri.toString() === key) await vscode.commands.executeCommand('workbench.action.files.revert');
      vscode.window.setStatusBarMessage('Backdoor Lens: the model outline is generated from the checkpoint; edits are discarded', 5000);
    } finally {
      this.reverting.delete(key);
    }
  }

  /** The checkpoint's results changed: open outlines re-read their text. */
  checkpointChanged(checkpoint: vscode.Uri): void {
    const outline = outlineUriOf(checkpoint);
    const key = outline.toString();
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.set(key, { mtime: Math.max(Date.now(), entry.mtime + 1) });
    this.changed.fire([{ type: vscode.FileChangeType.Changed, uri: outline }]);
  }

  private async bytes(uri: vscode.Uri): Promise<{ entry: Entry; bytes: Uint8Array }> {
    const key = uri.toString();
    const entry = this.entries.get(key) ?? { mtime: Date.now() };
    this.entries.set(key, entry);
    entry.bytes ??= new TextEncoder().encode(await this.client.sendRequest(OutlineRequest, { uri: key }));
    return { entry, bytes: entry.bytes };
  }

  async stat(uri: vscode.Uri): Promise<vscode.FileStat> {
    const { entry, bytes } = await this.bytes(uri);
    return { type: vscode.FileType.File, ctime: entry.mtime, mtime: entry.mtime, size: bytes.byteLength };
  }

  async readFile(uri: vscode.Uri): Promise<Uint8Array> {
    return (await this.bytes(uri)).bytes;
  }

  writeFile(uri: vscode.Uri): void {
    // Nothing is stored: the next read gives the generated text again.
    this.checkpointChanged(checkpointOfOutline(uri));
  }

  watch(): vscode.Disposable {
    return new vscode.Disposable(() => undefined);
  }

  readDirectory(): [string, vscode.FileType][] {
    return [];
  }

  createDirectory(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  delete(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  rename(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }
}
