/** One entry point for every clean-data format. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { BackdoorLensError, badData, badFile } from '../errors';
import type { ValueSpec } from '../graph/model';
import { NpyError, readNpy } from '../io/npy';
import { labelsFrom, pixelsFrom } from './arrays';
import { readImageFolder } from './image-folder';
import { isIdxPath, readIdxPair } from './idx';
import { readNpz } from './npz';
import { expectationFromInput, preprocess, storedImageSize } from './preprocess';
import type { Dataset, PreprocessSpec, RawImages } from './types';

export * from './types';
export { expectationFromInput, preprocess, type InputExpectation } from './preprocess';
export { decodeImage } from './image-folder';

export interface DataSource {
  path: string;
  /** Labels for formats that keep them apart (IDX, .npy). */
  labels?: string;
}

export function readRawImages(source: DataSource): RawImages {
  const { path } = source;
  if (!existsSync(path)) throw badData(path, 'no such file or folder');
  if (statSync(path).isDirectory()) return readImageFolder(path);
  if (isIdxPath(path)) return readIdxPair(path, source.labels);
  const bytes = readFileSync(path);
  if (path.endsWith('.npz') || (bytes[0] === 0x50 && bytes[1] === 0x4b)) return readNpz(path, bytes);
  if (path.endsWith('.npy') || bytes[0] === 0x93) return readNpyImages(path, bytes, source.labels);
  throw badData(path, 'unknown data format: expected .npz, .npy, an IDX file or a folder of class subfolders with PNG/JPEG images');
}

/** A .npy image array, with labels from a second .npy when given. */
export function readNpyImages(path: string, bytes: Uint8Array, labelsPath?: string): RawImages {
  const read = (file: string, data: Uint8Array) => {
    try {
      return readNpy(data);
    } catch (e) {
      if (e instanceof NpyError) throw badFile(file, e.message, e);
      throw e;
    }
  };
  const pixels = pixelsFrom(read(path, bytes), path, 'the array');
  const labels = labelsPath ? labelsFrom(read(labelsPath, readFileSync(labelsPath)), pixels.dims[0], labelsPath, 'the labels array') : undefined;
  return { source: path, pixels, labels };
}

/** The H×W of the images a data source holds (for networks that take any size), or undefined. */
export function imageSizeOf(source: DataSource): { height: number; width: number } | undefined {
  return storedImageSize(readRawImages(source).pixels.dims);
}

/** Loads a data set and preprocesses it for the model input. */
export function loadDataset(source: DataSource, input: ValueSpec, spec: PreprocessSpec = {}): Dataset {
  try {
    const raw = readRawImages(source);
    return preprocess(raw, expectationFromInput(input, spec), spec);
  } catch (e) {
    if (e instanceof BackdoorLensError) throw e;
    throw badData(source.path, `cannot load data: ${(e as Error).message}`, e);
  }
}
