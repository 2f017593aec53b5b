/**
 * "Choose clean data…": a file or folder picker for `backdoorLens.data`, written to the workspace
 * folder's settings (relative to it when inside it), after which the checkpoint is scanned again.
 */
import { relative } from 'node:path';
import * as vscode from 'vscode';

/** What the data loader reads: .npz, .npy, IDX files (also gzipped), or a folder of class folders. */
const DATA_FILTERS = { 'Clean sample set': ['npz', 'npy', 'gz', 'idx', 'idx3-ubyte', 'ubyte'], 'All files': ['*'] };

/** Opens the picker; resolves to the chosen path as written to the settings, or undefined when cancelled. */
export async function chooseCleanData(checkpoint: vscode.Uri | undefined): Promise<string | undefined> {
  const folder = (checkpoint && vscode.workspace.getWorkspaceFolder(checkpoint)) ?? vscode.workspace.workspaceFolders?.[0];
  const current = vscode.workspace.getConfiguration('backdoorLens', checkpoint ?? folder?.uri).get<string>('data');
  const picked = await vscode.window.showOpenDialog({
    title: 'Clean labelled images the scan can use (.npz with x and y, .npy, IDX, or a folder with one subfolder per class)',
    openLabel: 'Use as clean data',
    canSelectFiles: true,
    canSelectFolders: true,
    canSelectMany: false,
    filters: DATA_FILTERS,
    defaultUri: current && folder ? vscode.Uri.joinPath(folder.uri, current) : folder?.uri,
  });
  if (!picked?.length) return undefined;
  const chosen = picked[0].fsPath;
  const inside = folder && !relative(folder.uri.fsPath, chosen).startsWith('..');
  const value = inside ? relative(folder!.uri.fsPath, chosen) || '.' : chosen;
  const target = folder ? vscode.ConfigurationTarget.WorkspaceFolder : vscode.ConfigurationTarget.Global;
  await vscode.workspace.getConfiguration('backdoorLens', folder?.uri).update('data', value, target);
  return value;
}
