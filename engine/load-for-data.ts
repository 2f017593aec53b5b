/**
 * Loading a model for a given data set: a graph built from weights whose network takes any
 * input size (it pools adaptively before its head) is built at the data's image size unless
 * --size says otherwise, so 28×28 data needs no --size on a CIFAR ResNet. The report's model
 * notes say where the size came from.
 */
import { imageSizeOf, type DataSource } from './data';
import { loadModel } from './formats';
import type { LoadedModel, LoadOptions } from './formats/types';

export async function loadModelForData(path: string, options: LoadOptions, data?: DataSource): Promise<LoadedModel> {
  const model = await loadModel(path, options);
  if (!data || options.inputSize || !model.sizeAgnostic) return model;
  const size = imageSizeOf(data);
  const dims = model.onnx.inputs()[0]?.dims ?? [];
  if (!size || (dims[2] === size.height && dims[3] === size.width)) return model;
  return loadModel(path, { ...options, dataSize: size });
}
