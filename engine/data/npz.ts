/** .npz (a zip of .npy arrays): images under `x`, labels under `y`, optional `poisoned` flags. */
import { readRegularFile } from '../io/files';
import { badData, badFile } from '../errors';
import { NpyError, readNpy } from '../io/npy';
import { ZipArchive, ZipError } from '../io/zip';
import { labelsFrom, pixelsFrom } from './arrays';
import type { RawImages } from './types';

const imageKeys = ['x', 'images', 'x_test', 'data'];
const labelKeys = ['y', 'labels', 'y_test', 'targets'];

export function readNpz(path: string, bytes: Uint8Array = readRegularFile(path, { code: 'bad-data', what: 'data' })): RawImages {
  let zip: ZipArchive;
  try {
    zip = new ZipArchive(bytes);
  } catch (e) {
    throw badFile(path, `not a readable .npz archive: ${(e as Error).message}`, e);
  }
  const arrays = new Map(zip.names().filter((n) => n.endsWith('.npy')).map((n) => [n.slice(0, -4), n]));
  const pick = (keys: string[]) => keys.find((k) => arrays.has(k));
  const xKey = pick(imageKeys);
  if (!xKey) throw badData(path, `the .npz has no image array: expected one named 'x' (found: ${[...arrays.keys()].join(', ') || 'none'})`);
  const read = (key: string) => {
    try {
      return readNpy(zip.read(arrays.get(key)!));
    } catch (e) {
      if (e instanceof NpyError || e instanceof ZipError) throw badFile(path, `array '${key}': ${e.message}`, e);
      throw e;
    }
  };
  const pixels = pixelsFrom(read(xKey), path, `array '${xKey}'`);
  const yKey = pick(labelKeys);
  const labels = yKey ? labelsFrom(read(yKey), pixels.dims[0], path, `array '${yKey}'`) : undefined;
  let poisoned: Uint8Array | undefined;
  if (arrays.has('poisoned')) {
    const p = read('poisoned');
    if (p.dims.length !== 1 || p.dims[0] !== pixels.dims[0]) throw badData(path, `array 'poisoned' has shape (${p.dims.join(', ')}), expected (${pixels.dims[0]},)`);
    poisoned = Uint8Array.from(p.data as ArrayLike<number>, (v) => (Number(v) ? 1 : 0));
  }
  return { source: path, pixels, labels, poisoned };
}
