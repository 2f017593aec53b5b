/**
 * From weights to a LoadedModel: builds the graph with an architecture template, and re-reads the
 * original weights of a file (for writing purified weights back under the same keys).
 */
import { createHash } from 'node:crypto';
import { readRegularFile } from '../io/files';
import { BackdoorLensError, usageError } from '../errors';
import type { ModelFormat } from '../report/types';
import type { Tensor } from '../tensor';
import { backdoorBenchWeights, isBackdoorBenchRecord } from './backdoorbench';
import { readSafetensors } from './safetensors-file';
import { ArchitectureError, architectureNames, buildFromStateDict, isArchitectureName, type BuiltModel, type InputSize } from './templates';
import { readTorchObject } from './torch/checkpoint';
import { moduleRecordIn, moduleTree, stateDictOf } from './torch/modules';
import { stateDictIn } from './torch/state-dict';
import { loadLimitsOf, type LoadedModel, type LoadOptions } from './types';

export function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface WeightsSource {
  path: string;
  bytes: Uint8Array;
  sha256: string;
  format: ModelFormat;
  weights: Map<string, Tensor>;
  /** What the file itself says (BackdoorBench records name their architecture and image size). */
  arch?: string;
  inputSize?: InputSize;
}

export function modelFromWeights(src: WeightsSource, options: LoadOptions): LoadedModel {
  if (options.arch && !isArchitectureName(options.arch)) throw usageError(`unknown architecture '${options.arch}' for --arch; templates: ${architectureNames.join(', ')}`);
  let built;
  try {
    built = buildFromStateDict(src.weights, { arch: options.arch ?? src.arch, inputSize: options.inputSize ?? src.inputSize, dataSize: options.dataSize });
  } catch (e) {
    if (e instanceof ArchitectureError) throw new BackdoorLensError('unsupported-model', e.message, { file: src.path, cause: e });
    throw e;
  }
  return loadedFromFile(src, {
    onnx: built.onnx,
    numClasses: built.numClasses,
    architecture: built.architecture,
    sourceKeys: built.sourceKeys,
    notes: [built.match, sizeNote(built, options.inputSize ? '--size' : src.inputSize ? 'the file' : undefined)],
    sizeAgnostic: built.sizeAgnostic,
  });
}

/** A model built from a weights file: the file's identity, no findings yet, and what was built. */
export function loadedFromFile(
  src: Pick<WeightsSource, 'path' | 'format' | 'sha256' | 'bytes'>,
  built: Omit<LoadedModel, 'path' | 'format' | 'sha256' | 'fileBytes' | 'findings'>,
): LoadedModel {
  return { path: src.path, format: src.format, sha256: src.sha256, fileBytes: src.bytes.length, findings: [], ...built };
}

/** Where the input size came from, in the report's words. */
function sizeNote(built: BuiltModel, givenBy: string | undefined): string {
  const [, h, w] = built.input;
  if (built.inputSizeFrom === 'data') return `input ${h}×${w} from the data (the network pools adaptively; --size overrides)`;
  if (built.inputSizeFrom === 'given') return `input ${h}×${w} from ${givenBy ?? '--size'}`;
  return `input ${h}×${w}, the template's default (${built.sizeAgnostic ? 'the network pools adaptively: data of another size sets it' : 'its head fixes the size'})`;
}

/** The weights of a state_dict, safetensors, BackdoorBench or whole-model file, under the keys the file uses (a whole model's: its state_dict's). */
export function readWeights(path: string, format: ModelFormat, options: LoadOptions = {}): Map<string, Tensor> {
  const bytes = readRegularFile(path, { what: 'model' });
  const limits = loadLimitsOf(options);
  if (format === 'safetensors') return readSafetensors(path, bytes, limits.maxTensorElements).tensors;
  const root = readTorchObject(bytes, { path, sha256: sha256Of(bytes), maxTensorElements: limits.maxTensorElements, format });
  if (isBackdoorBenchRecord(root)) return backdoorBenchWeights(root);
  const record = moduleRecordIn(root);
  if (record) return stateDictOf(moduleTree(path, record));
  return stateDictIn(path, root);
}
