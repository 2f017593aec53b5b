/** Loading shared by the commands: the model, its data, a runtime. */
import { loadDataset, loadModelForData, Runtime, type Dataset, type LoadedModel } from '../engine';
import { imageInputOf } from '../engine/evaluate';
import type { Settings } from './options';

export async function openModel(path: string, s: Settings): Promise<LoadedModel> {
  const { maxModelBytes, maxTensorElements } = s.limits;
  const { height, width } = s.preprocess;
  const options = {
    arch: s.arch,
    numClasses: s.numClasses,
    // Only graphs built from weights take it; an ONNX model keeps the input size it declares.
    ...(height && width ? { inputSize: { height, width } } : {}),
    limits: { ...(maxModelBytes ? { maxModelBytes } : {}), ...(maxTensorElements ? { maxTensorElements } : {}) },
  };
  // A size-agnostic network built from weights takes the data's image size.
  return loadModelForData(path, options, s.data ? { path: s.data, labels: s.labels } : undefined);
}

export function openData(model: LoadedModel, path: string, s: Settings, labels = s.labels): Dataset {
  return loadDataset({ path, labels }, imageInputOf(model.onnx), s.preprocess);
}

export function openRuntime(s: Settings): Runtime {
  return new Runtime({ executionProvider: s.provider, threads: s.threads });
}
