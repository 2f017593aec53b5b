/** Picks the reader for a checkpoint and loads it into the common graph. */
import { BackdoorLensError } from '../errors';
import { readRegularFile } from '../io/files';
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

export async function loadModel(path: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const limits = loadLimitsOf(options);
  let bytes: Buffer;
  try {
    bytes = readRegularFile(path, {
      what: 'model',
      checkSize: (size) => {
        if (size > limits.maxModelBytes) throw modelSizeLimitError(path, size, limits.maxModelBytes);
      },
    });
  } catch (e) {
    if (e instanceof BackdoorLensError && /^is a folder/.test(e.message)) throw new BackdoorLensError('unsupported-model', 'is a folder, not a model file', { file: path });
    throw e;
  }
  const first = bytes.subarray(0, 64);
  const reader = modelReaders.find((r) => r.canRead(path, first));
  if (!reader) {
    throw new BackdoorLensError('unsupported-model', `is not a supported model file (supported: ${modelReaders.map((r) => r.format).join(', ')})`, { file: path });
  }
  return reader.read(path, bytes, { ...options, limits });
}
