import type { OnnxModel } from '../graph/model';
import type { Finding, ModelFormat } from '../report/types';

export interface LoadLimits {
  /** Largest model file accepted, in bytes. */
  maxModelBytes: number;
  /** Largest tensor accepted, in elements. */
  maxTensorElements: number;
}

export const defaultLoadLimits: LoadLimits = {
  maxModelBytes: 2 * 2 ** 30,
  maxTensorElements: 2 ** 28,
};

/** The limits that apply: each one given (and not undefined), else its default. */
export function loadLimitsOf(options: { limits?: Partial<LoadLimits> }): LoadLimits {
  return {
    maxModelBytes: options.limits?.maxModelBytes ?? defaultLoadLimits.maxModelBytes,
    maxTensorElements: options.limits?.maxTensorElements ?? defaultLoadLimits.maxTensorElements,
  };
}

export interface LoadOptions {
  limits?: Partial<LoadLimits>;
  /** Architecture template to build a state_dict with, overriding detection. */
  arch?: string;
  /** Class count, when the file does not say. */
  numClasses?: number;
  /**
   * Spatial input size for graphs built from weights (state_dict, safetensors, BackdoorBench),
   * overriding the template's default (--size, or preprocess.height/width in backdoor-lens.json).
   */
  inputSize?: { height: number; width: number };
  /**
   * The size of the images the model will run on. A graph built from weights takes it when no
   * inputSize is given and the network is size-agnostic (it pools adaptively before its head).
   */
  dataSize?: { height: number; width: number };
}

export interface LoadedModel {
  path: string;
  format: ModelFormat;
  sha256: string;
  fileBytes: number;
  /** The graph every analysis runs on. */
  onnx: OnnxModel;
  /** Findings raised while reading (unsafe pickle globals and the like). */
  findings: Finding[];
  numClasses: number | null;
  /** The architecture template used to build the graph from weights, if any. */
  architecture?: string;
  /** How the graph was made, for the report: which template matched and how, where the input size came from. */
  notes?: string[];
  /** A graph built from weights that takes any input size (its input size can follow the data). */
  sizeAgnostic?: boolean;
  /** For weight-only sources: original key of each ONNX initializer, to write purified weights back. */
  sourceKeys?: Map<string, string>;
}

/** One reader per format: Netron-style "can I read this?" and "read it". */
export interface ModelReader {
  format: ModelFormat;
  /** Cheap check on the path and the first bytes. */
  canRead(path: string, head: Uint8Array): boolean;
  read(path: string, bytes: Uint8Array, options: LoadOptions): Promise<LoadedModel>;
}
