/** The outline of a loaded model: one entry per graph node with its layer name, op and output shape. */
import type { LoadedModel } from '../../../engine/formats/types';
import { inferShapes } from '../../../engine/graph/shapes';
import { bnStatus } from '../../../engine/graph/patterns';
import type { ModelOutline, OutlineLayer } from '../jobs/messages';

const FLOAT_TYPES = new Set([1, 10, 11, 16]);
/** Nodes that carry no computation a reader looks for. */
const HIDDEN_OPS = new Set(['Constant', 'Identity']);

export function describeModel(model: LoadedModel): ModelOutline {
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
