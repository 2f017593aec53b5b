/**
 * The outline of a loaded model, as an editor shows it: one entry per graph node with its layer
 * name, op and output shape (the layer names findings and neuron scores use). `info` is the
 * summary of the same model; this is its per-node listing.
 */
import type { LoadedModel } from './formats/types';
import { bnStatus } from './graph/patterns';
import { inferShapes } from './graph/shapes';

export type Dim = number | string;

/** One line per graph node: what the outline document shows. */
export interface OutlineLayer {
  /** Layer name as findings and neuron scores name it (engine `layerName`). */
  name: string;
  op: string;
  /** The node's own name in the graph. */
  node: string;
  shape?: Dim[];
  /** Elements in the node's floating-point initializers. */
  parameters: number;
}

export interface ModelOutline {
  path: string;
  format: string;
  sha256: string;
  numClasses: number | null;
  bn: string;
  architecture?: string;
  inputs: { name: string; dtype: string; dims: Dim[] }[];
  outputs: { name: string; dtype: string; dims: Dim[] }[];
  layers: OutlineLayer[];
}

const FLOAT_TYPES = new Set([1, 10, 11, 16]);
/** Nodes that carry no computation a reader looks for. */
const HIDDEN_OPS = new Set(['Constant', 'Identity']);

export function modelOutline(model: LoadedModel): ModelOutline {
  const onnx = model.onnx;
  let shapes: Map<string, (number | string)[]> | undefined;
  try {
    shapes = inferShapes(onnx).shapes;
  } catch {
    // Shapes are a courtesy in the outline; a graph they cannot be derived for still gets one.
    shapes = undefined;
  }
  const layers: OutlineLayer[] = [];
  for (const node of onnx.nodes) {
    if (HIDDEN_OPS.has(node.op_type)) continue;
    let parameters = 0;
    for (const input of node.input) {
      const p = input ? onnx.initializerProto(input) : undefined;
      if (p && FLOAT_TYPES.has(p.data_type ?? 0)) parameters += (p.dims ?? []).reduce((a: number, d) => a * Number(d), 1);
    }
    const shape = shapes?.get(node.output[0]);
    layers.push({ name: onnx.layerName(node), op: node.op_type, node: onnx.nodeName(node), ...(shape ? { shape } : {}), parameters });
  }
  return {
    path: model.path,
    format: model.format,
    sha256: model.sha256,
    numClasses: model.numClasses,
    bn: bnStatus(onnx).state,
    ...(model.architecture ? { architecture: model.architecture } : {}),
    inputs: onnx.inputs(),
    outputs: onnx.outputs(),
    layers,
  };
}

/** The outline of a checkpoint refused before it was read (unsafe pickle): what is known without a graph. */
export function refusedOutline(path: string, format: string, sha256: string): ModelOutline {
  return { path, format, sha256, numClasses: null, bn: 'unknown', inputs: [], outputs: [], layers: [] };
}
