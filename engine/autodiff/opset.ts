/**
 * Brings a forward graph exported at opsets 11–21 to one form (opset 18 or the model's own,
 * if newer), so gradient rules read every op one way and emitted nodes share one opset:
 * axes / split sizes become inputs, pre-13 Softmax gets its coerce-to-2-D meaning made
 * explicit, and inference-time Dropout becomes Identity.
 *
 * Only ops whose meaning is known not to change between the model's opset and the target are
 * carried; anything else is refused rather than silently reinterpreted.
 */
import { attrInt, attrInts, intAttr } from '../graph/attributes';
import type { Dim, OnnxModel } from '../graph/model';
import type { NodeProto } from '../graph/proto';
import { unsupportedModel, unsupportedNode } from './errors';

export const minimumOpset = 11;
export const targetOpset = 18;
const newestKnownOpset = 21;

/** Ops whose meaning at opset 18 is the meaning they had at any opset from 11 on. */
const carriedUnchanged = new Set([
  'Conv', 'ConvTranspose', 'BatchNormalization', 'InstanceNormalization', 'LRN',
  // LayerNormalization exists from opset 17 on, unchanged since.
  'LayerNormalization',
  'Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'Tanh', 'HardSigmoid', 'HardSwish', 'Clip', 'Elu', 'Selu', 'Softplus', 'Softsign', 'Celu',
  'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'LpPool', 'MaxUnpool',
  'Gemm', 'MatMul', 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Neg', 'Exp', 'Log', 'Sqrt', 'Abs', 'Reciprocal', 'Erf', 'Sign',
  'Floor', 'Ceil', 'Round', 'Min', 'Max', 'Sum', 'Mean', 'Mod', 'IsNaN', 'IsInf',
  // Mish (opset 18) and Gelu (opset 20) only occur in models whose own opset is kept.
  'Mish', 'Gelu',
  'Flatten', 'Reshape', 'Transpose', 'Concat', 'Slice', 'Pad', 'Identity', 'Expand', 'Tile', 'Resize',
  'Shape', 'Size', 'Gather', 'GatherElements', 'ScatterND', 'Constant', 'ConstantOfShape', 'Cast', 'CastLike', 'Range',
  'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Where', 'Not', 'And', 'Or', 'Xor',
  'ArgMax', 'ArgMin', 'TopK', 'NonZero', 'CumSum', 'Einsum', 'Trilu',
]);
const reduceOps = new Set(['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']);

export interface OpsetContext {
  model: OnnxModel;
  shapes: Map<string, Dim[]>;
  /** Adds an int64 initializer and returns its name. */
  ints(values: number[], hint: string): string;
}

function dropAttributes(node: NodeProto, names: string[]): void {
  node.attribute = node.attribute.filter((a) => !names.includes(a.name));
}

function setInput(node: NodeProto, at: number, name: string): void {
  while (node.input.length < at) node.input.push('');
  node.input[at] = name;
}

/** Rewrites the model's nodes in place to the target opset; returns the opset now declared. */
export function normalizeOpset(ctx: OpsetContext): number {
  const { model } = ctx;
  const from = model.opsetVersion('');
  if (from === undefined) throw unsupportedModel(model, 'the model declares no opset for the default ONNX domain');
  if (from < minimumOpset) throw unsupportedModel(model, `the model uses opset ${from}; export it again with opset_version ${minimumOpset} or newer`);
  if (from > newestKnownOpset) throw unsupportedModel(model, `the model uses opset ${from}; the gradient builder knows opsets ${minimumOpset}–${newestKnownOpset}`);
  const to = Math.max(from, targetOpset);
  const rewritten: NodeProto[] = [];
  for (const node of model.nodes) {
    if (node.domain && node.domain !== 'ai.onnx') throw unsupportedNode(model, node, `ops of domain '${node.domain}' are not supported`);
    const op = node.op_type;
    if (op === 'Dropout') {
      if (node.output.slice(1).some((o) => o && model.consumersOf(o).length > 0)) throw unsupportedNode(model, node, 'its mask output is used');
      rewritten.push({ ...node, op_type: 'Identity', input: [node.input[0]], output: [node.output[0]], attribute: [] });
      continue;
    }
    if (op === 'BatchNormalization') {
      if (attrInt(node, 'training_mode', 0) === 1) throw unsupportedNode(model, node, 'BatchNormalization in training mode; export the model in eval() mode');
      if (node.output.slice(1).some((o) => o && model.consumersOf(o).length > 0)) throw unsupportedNode(model, node, 'its running-statistics outputs are used');
      node.output = [node.output[0]];
      dropAttributes(node, ['training_mode', 'momentum']);
    } else if (op === 'Softmax' || op === 'LogSoftmax' || op === 'Hardmax') {
      if (from < 13) rewriteLegacySoftmax(ctx, node, rewritten);
      else rewritten.push(node);
      continue;
    } else if (op === 'Split') {
      const split = attrInts(node, 'split');
      if (split) setInput(node, 1, ctx.ints(split, `${node.output[0]}.split`));
      else if (!node.input[1]) {
        const dims = ctx.shapes.get(node.input[0]);
        const axis = attrInt(node, 'axis', 0);
        const total = dims?.[axis < 0 ? axis + dims.length : axis];
        if (typeof total !== 'number' || total % node.output.length !== 0) throw unsupportedNode(model, node, 'the split sizes are not known statically');
        setInput(node, 1, ctx.ints(new Array<number>(node.output.length).fill(total / node.output.length), `${node.output[0]}.split`));
      }
      dropAttributes(node, ['split', 'num_outputs']);
    } else if (op === 'Squeeze' || op === 'Unsqueeze' || reduceOps.has(op)) {
      const axes = attrInts(node, 'axes');
      if (axes) setInput(node, 1, ctx.ints(axes, `${node.output[0]}.axes`));
      dropAttributes(node, ['axes']);
    } else if (!carriedUnchanged.has(op)) {
      throw unsupportedNode(model, node, 'this op is not supported by the gradient builder');
    }
    rewritten.push(node);
  }
  model.graph.node = rewritten;
  const entry = model.proto.opset_import.find((o) => !o.domain || o.domain === 'ai.onnx');
  entry!.version = to;
  if (Number(model.proto.ir_version ?? 0) < 8) model.proto.ir_version = 8;
  model.invalidate();
  return to;
}

/** Before opset 13, Softmax(axis=a) meant: flatten to [prod(:a), prod(a:)], normalise rows, restore. */
function rewriteLegacySoftmax(ctx: OpsetContext, node: NodeProto, out: NodeProto[]): void {
  const dims = ctx.shapes.get(node.input[0]);
  if (!dims) throw unsupportedNode(ctx.model, node, 'the rank of its input is not known');
  const rank = dims.length;
  let axis = attrInt(node, 'axis', 1);
  if (axis < 0) axis += rank;
  if (axis === rank - 1) {
    dropAttributes(node, ['axis']);
    node.attribute.push(intAttr('axis', -1));
    out.push(node);
    return;
  }
  const base = node.name || node.output[0];
  const flat = `${node.output[0]}.flat2d`, normed = `${node.output[0]}.normed2d`, shape = `${node.output[0]}.inshape`;
  out.push(
    { op_type: 'Flatten', input: [node.input[0]], output: [flat], attribute: [intAttr('axis', axis)], name: `${base}/flatten2d` },
    { op_type: node.op_type, input: [flat], output: [normed], attribute: [intAttr('axis', -1)], name: node.name },
    { op_type: 'Shape', input: [node.input[0]], output: [shape], attribute: [], name: `${base}/inshape` },
    { op_type: 'Reshape', input: [normed, shape], output: [node.output[0]], attribute: [], name: `${base}/restore` },
  );
}
