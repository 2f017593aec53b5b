/** safetensors files of a state_dict: weights only, built into a graph with an architecture template. */
import { looksLikeSafetensors, readSafetensors } from './safetensors-file';
import { loadLimitsOf, type LoadedModel, type ModelReader } from './types';
import { modelFromWeights, sha256Of } from './weights';

export const safetensorsReader: ModelReader = {
  format: 'safetensors',
  canRead: (path, head) => /\.safetensors$/i.test(path) || (!/\.onnx$/i.test(path) && looksLikeSafetensors(head)),
  async read(path, bytes, options): Promise<LoadedModel> {
    const limits = loadLimitsOf(options);
    const { tensors } = readSafetensors(path, bytes, limits.maxTensorElements);
    return modelFromWeights({ path, bytes, sha256: sha256Of(bytes), format: 'safetensors', weights: tensors }, options);
  },
};
