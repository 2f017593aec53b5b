/**
 * torch.save checkpoints (.pt, .pth, .bin, .ckpt), zip or legacy: a state_dict, a training
 * checkpoint holding one, a whole pickled model (torch.save(model)) of torch.nn / torchvision
 * classes, or a BackdoorBench record. Read by the safe pickle interpreter; never unpickled by
 * Python rules.
 */
import { BackdoorLensError } from '../errors';
import { isZip } from '../io/zip';
import { backdoorBenchModel, isBackdoorBenchRecord } from './backdoorbench';
import { readTorchObject } from './torch/checkpoint';
import { moduleRecordIn, moduleTree } from './torch/modules';
import { stateDictIn } from './torch/state-dict';
import { modelFromModuleTree } from './torch/whole-model';
import { loadLimitsOf, type LoadedModel, type ModelReader } from './types';
import { modelFromWeights, sha256Of } from './weights';

const PICKLE_EXTENSIONS = /\.(pt|pth|pkl|pickle|ckpt|bin|tar|pth\.tar)$/i;
const OTHER_FORMATS = /\.(onnx|npz|npy|safetensors|json|txt)$/i;

export const pytorchReader: ModelReader = {
  format: 'pytorch',
  // Protocol 0/1 pickles start with any opcode: trust the extension then, unless the bytes look like ONNX's protobuf.
  canRead: (path, head) => !OTHER_FORMATS.test(path) && (isZip(head) || head[0] === 0x80 || (PICKLE_EXTENSIONS.test(path) && head[0] !== 0x08)),
  async read(path, bytes, options): Promise<LoadedModel> {
    const limits = loadLimitsOf(options);
    const sha256 = sha256Of(bytes);
    const root = readTorchObject(bytes, { path, sha256, maxTensorElements: limits.maxTensorElements });
    if (isBackdoorBenchRecord(root)) {
      const record = backdoorBenchModel(path, root);
      const model = modelFromWeights({ path, bytes, sha256, format: 'backdoorbench', weights: record.weights, arch: record.arch, inputSize: record.inputSize }, options);
      if (record.numClasses !== undefined && record.numClasses !== model.numClasses) {
        throw new BackdoorLensError('bad-file', `the BackdoorBench record says num_classes ${record.numClasses} but its model has ${model.numClasses} outputs`, { file: path });
      }
      return model;
    }
    const record = moduleRecordIn(root);
    if (record) return modelFromModuleTree({ path, bytes, sha256, format: 'pytorch' }, moduleTree(path, record), options);
    return modelFromWeights({ path, bytes, sha256, format: 'pytorch', weights: stateDictIn(path, root) }, options);
  },
};
