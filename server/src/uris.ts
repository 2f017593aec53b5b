/** Checkpoint URIs (file:) and their outline documents (backdoor-lens-outline:<path>.outline). */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BackdoorLensError } from '../../engine';
import { OUTLINE_SCHEME } from '../../protocol/lsp';

const OUTLINE_SUFFIX = '.outline';

export function pathOf(uri: string): string {
  if (uri.startsWith(`${OUTLINE_SCHEME}:`)) return checkpointPathOfOutline(uri);
  if (!uri.startsWith('file:')) throw new BackdoorLensError('usage', `${uri}: only files on disk (file: URIs) can be scanned`);
  return fileURLToPath(uri);
}

export function fileUri(path: string): string {
  return pathToFileURL(path).href;
}

/** A checkpoint URI in one canonical spelling, whatever encoding the client used. */
export function canonicalUri(uri: string): string {
  return fileUri(pathOf(uri));
}

export function outlineUri(checkpointPath: string): string {
  return `${OUTLINE_SCHEME}:${pathToFileURL(checkpointPath).pathname}${OUTLINE_SUFFIX}`;
}

export function isOutlineUri(uri: string): boolean {
  return uri.startsWith(`${OUTLINE_SCHEME}:`);
}

export function checkpointPathOfOutline(uri: string): string {
  let rest = uri.slice(OUTLINE_SCHEME.length + 1);
  if (rest.endsWith(OUTLINE_SUFFIX)) rest = rest.slice(0, -OUTLINE_SUFFIX.length);
  // VS Code may spell the path with an authority ('//') part; the path starts at the first '/'.
  rest = rest.replace(/^\/\/(?=\/)/, '');
  return fileURLToPath(`file://${rest.startsWith('/') ? '' : '/'}${rest}`);
}

export const CHECKPOINT_EXTENSIONS = ['.onnx', '.pt', '.pth', '.safetensors'];

export function isCheckpointPath(p: string): boolean {
  const lower = p.toLowerCase();
  return CHECKPOINT_EXTENSIONS.some((e) => lower.endsWith(e));
}
