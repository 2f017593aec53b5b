/**
 * IDX files (the MNIST family), optionally gzip'd. Images and labels come as a pair: the labels
 * file is found beside the images ('…images-idx3-ubyte' → '…labels-idx1-ubyte') or given explicitly.
 */
import { existsSync } from 'node:fs';
import { readRegularFile } from '../io/files';
import { gunzipSync } from 'node:zlib';
import { badData, badFile } from '../errors';
import { labelsFrom, pixelsFrom } from './arrays';
import type { DType, Tensor, TensorData } from '../tensor';
import type { RawImages } from './types';

const types: Record<number, { dtype: DType; size: number }> = {
  0x08: { dtype: 'uint8', size: 1 },
  0x09: { dtype: 'int8', size: 1 },
  0x0b: { dtype: 'int16', size: 2 },
  0x0c: { dtype: 'int32', size: 4 },
  0x0d: { dtype: 'float32', size: 4 },
  0x0e: { dtype: 'float64', size: 8 },
};

export function isIdxPath(path: string): boolean {
  return /(idx\d(-u?byte)?|\.idx)(\.gz)?$/i.test(path);
}

function maybeGunzip(path: string, bytes: Uint8Array): Uint8Array {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      // An IDX file of images compresses a few times at most; the cap bounds a gzip bomb.
      return gunzipSync(bytes, { maxOutputLength: 64 * bytes.length + 64 * 2 ** 20 });
    } catch (e) {
      throw badFile(path, `the gzip stream is corrupt or inflates beyond its limit: ${(e as Error).message}`, e);
    }
  }
  return bytes;
}

export function readIdx(path: string, raw: Uint8Array = readRegularFile(path, { code: 'bad-data', what: 'data' })): Tensor {
  const bytes = maybeGunzip(path, raw);
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) throw badFile(path, 'not an IDX file (the magic number must start with two zero bytes)');
  const type = types[bytes[2]];
  const rank = bytes[3];
  if (!type) throw badFile(path, `IDX data type 0x${bytes[2].toString(16)} is not one of ubyte, byte, short, int, float, double`);
  if (rank === 0 || rank > 4) throw badFile(path, `IDX rank ${rank} is not supported (1 to 4)`);
  if (bytes.length < 4 + 4 * rank) throw badFile(path, 'the IDX header is truncated');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const n = dims.reduce((a, b) => a * b, 1);
  const offset = 4 + 4 * rank;
  if (n * type.size !== bytes.length - offset) {
    throw badFile(path, `the IDX header declares dims (${dims.join(', ')}), ${n * type.size} bytes of data, but ${bytes.length - offset} follow`);
  }
  let data: TensorData;
  switch (type.dtype) {
    case 'uint8': data = Uint8Array.from(bytes.subarray(offset)); break;
    case 'int8': data = Int8Array.from(bytes.subarray(offset), (b) => (b << 24) >> 24); break;
    case 'int16': data = Int16Array.from({ length: n }, (_, i) => view.getInt16(offset + 2 * i, false)); break;
    case 'int32': data = Int32Array.from({ length: n }, (_, i) => view.getInt32(offset + 4 * i, false)); break;
    case 'float32': data = Float32Array.from({ length: n }, (_, i) => view.getFloat32(offset + 4 * i, false)); break;
    default: data = Float64Array.from({ length: n }, (_, i) => view.getFloat64(offset + 8 * i, false));
  }
  return { dtype: type.dtype, dims, data };
}

/** The labels file that pairs with an images file, if it sits beside it. */
export function idxLabelsPathFor(imagesPath: string): string | undefined {
  const candidates = [
    imagesPath.replace(/images-idx3-ubyte/, 'labels-idx1-ubyte'),
    imagesPath.replace(/images\.idx3/, 'labels.idx1'),
    imagesPath.replace(/images/, 'labels'),
  ];
  return candidates.find((c) => c !== imagesPath && existsSync(c));
}

export function readIdxPair(imagesPath: string, labelsPath = idxLabelsPathFor(imagesPath)): RawImages {
  const pixels = pixelsFrom(readIdx(imagesPath), imagesPath, 'the IDX images');
  if (!labelsPath) return { source: imagesPath, pixels };
  const labelTensor = readIdx(labelsPath);
  if (labelTensor.dims.length !== 1) throw badData(labelsPath, `IDX labels must be 1-D, got dims (${labelTensor.dims.join(', ')})`);
  if (labelTensor.dims[0] !== pixels.dims[0]) throw badData(labelsPath, `holds ${labelTensor.dims[0]} labels for ${pixels.dims[0]} images in ${imagesPath}`);
  return { source: imagesPath, pixels, labels: labelsFrom(labelTensor, pixels.dims[0], labelsPath, 'the IDX labels') };
}
