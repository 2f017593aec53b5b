/** Picks the reader for a checkpoint and loads it into the common graph. */
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { BackdoorLensError } from '../errors';
import { modelSizeLimitError } from './limits';
import { onnxReader } from './onnx';
import { pytorchReader } from './pytorch';
import { safetensorsReader } from './safetensors';
import { loadLimitsOf, type LoadedModel, type LoadOptions, type ModelReader } from './types';

export * from './types';
export { classCountOf, looksLikeText } from './onnx';
export { UnsafeCheckpointError, isUnsafeCheckpointError } from './unsafe';
export { architectureNames, buildFromStateDict, type BuiltModel } from './templates';
export { purifiedWeights, type PurifiedWeights } from './purified';
export { encodeSafetensors, readSafetensors } from './safetensors-file';
export { readWeights } from './weights';

/**
 * Readers in the order they are asked; the first whose canRead says yes reads the file. safetensors
 * comes first because its header length can start with any byte, ONNX's included.
 */
export const modelReaders: ModelReader[] = [safetensorsReader, pytorchReader, onnxReader];

function head(path: string, n = 64): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

export async function loadModel(path: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const limits = loadLimitsOf(options);
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new BackdoorLensError('unsupported-model', 'is a folder, not a model file', { file: path });
    size = st.size;
  } catch (e) {
    if (e instanceof BackdoorLensError) throw e;
    throw new BackdoorLensError('bad-file', 'no such file', { file: path, cause: e });
  }
  if (size > limits.maxModelBytes) {
    throw modelSizeLimitError(path, size, limits.maxModelBytes);
  }
  const first = head(path);
  const reader = modelReaders.find((r) => r.canRead(path, first));
  if (!reader) {
    throw new BackdoorLensError('unsupported-model', `is not a supported model file (supported: ${modelReaders.map((r) => r.format).join(', ')})`, { file: path });
  }
  return reader.read(path, readFileSync(path), { ...options, limits });
}
