/**
 * Reverse-mode accumulation over the topologically sorted forward graph. Only tensors that
 * both depend on a wrt tensor and reach a seeded tensor get gradients; contributions to a
 * tensor used several times (residual connections) are summed before its producer's rule runs.
 */
import { attrInt } from '../graph/attributes';
import type { NodeProto } from '../graph/proto';
import type { Emitter } from './emitter';
import { unsupportedNode } from './errors';
import type { PreparedForward } from './prepare';
import { gradientRules } from './rules';
import type { RuleContext } from './rules/types';

/**
 * Ops whose outputs are integers, booleans or piecewise constant: no gradient flows through
 * them, but they may appear anywhere in the forward graph (a decision rule such as BNA's
 * argmax test feeding a Where, for one).
 */
const nonDifferentiable = new Set([
  'Shape', 'Size', 'ArgMax', 'ArgMin', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor',
  'IsNaN', 'IsInf', 'NonZero', 'ConstantOfShape', 'Range', 'Floor', 'Ceil', 'Round', 'Sign', 'Constant',
]);

/** ONNX element types that carry gradients (float, float16, double, bfloat16). */
const floatTypes = new Set([1, 10, 11, 16]);

/**
 * Outputs that carry no gradient even though an input does: indices (MaxPool's second output,
 * TopK's) and casts to integer or boolean types.
 */
function isDiscreteOutput(node: NodeProto, index: number, discrete: ReadonlySet<string>): boolean {
  if (index > 0 && (node.op_type === 'MaxPool' || node.op_type === 'TopK')) return true;
  if (node.op_type === 'Cast') return !floatTypes.has(attrInt(node, 'to', 1));
  if (node.op_type === 'CastLike') return discrete.has(node.input[1]);
  return false;
}

/** Tensors known to hold integers or booleans: non-float graph inputs and initializers, and what discrete ops make of them. */
function discreteTensors(model: PreparedForward['model']): Set<string> {
  const discrete = new Set<string>();
  for (const v of model.graph.input) {
    const type = v.type?.tensor_type?.elem_type;
    if (type !== undefined && !floatTypes.has(Number(type))) discrete.add(v.name);
  }
  for (const t of model.graph.initializer) if (!floatTypes.has(Number(t.data_type ?? 1))) discrete.add(t.name ?? '');
  for (const node of model.nodes) {
    node.output.forEach((o, k) => {
      if (o && (nonDifferentiable.has(node.op_type) || isDiscreteOutput(node, k, discrete))) discrete.add(o);
    });
  }
  return discrete;
}

/**
 * Emits the backward nodes for the given seeds (forward tensor -> its upstream gradient)
 * and returns each wrt tensor's gradient (undefined when no path connects it to a seed).
 */
export function emitBackward(prepared: PreparedForward, e: Emitter, seeds: ReadonlyMap<string, string>, wrt: readonly string[]): Map<string, string | undefined> {
  const { model } = prepared;
  const nodes = model.nodes;
  const varying = new Set(wrt);
  const discrete = discreteTensors(model);
  for (const node of nodes) {
    if (nonDifferentiable.has(node.op_type) || !node.input.some((i) => i && varying.has(i))) continue;
    node.output.forEach((o, k) => {
      if (o && !isDiscreteOutput(node, k, discrete)) varying.add(o);
    });
  }
  const relevant = new Set([...seeds.keys()].filter((s) => varying.has(s)));
  for (let n = nodes.length - 1; n >= 0; n--) {
    const node = nodes[n];
    if (!node.output.some((o) => relevant.has(o))) continue;
    for (const i of node.input) if (i && varying.has(i)) relevant.add(i);
  }

  const contributions = new Map<string, string[]>();
  const contribute = (tensor: string, grad: string) => {
    const list = contributions.get(tensor);
    if (list) list.push(grad);
    else contributions.set(tensor, [grad]);
  };
  const gradientOf = (tensor: string): string | undefined => {
    const parts = contributions.get(tensor);
    if (!parts) return undefined;
    if (parts.length > 1) contributions.set(tensor, [e.sum(parts)]);
    const g = contributions.get(tensor)![0];
    const dims = e.shapes.get(tensor);
    if (dims && !dims.includes('?')) e.gradientShapes.set(g, dims);
    return g;
  };
  for (const [tensor, grad] of seeds) if (relevant.has(tensor)) contribute(tensor, grad);
  const absorbed = new Set<NodeProto>();

  for (let n = nodes.length - 1; n >= 0; n--) {
    const node = nodes[n];
    const needed = node.input.map((i) => !!i && varying.has(i) && relevant.has(i));
    if (!needed.some(Boolean)) continue;
    const grads = node.output.map((o) => (relevant.has(o) ? gradientOf(o) : undefined));
    if (grads.every((g) => g === undefined)) continue;
    if (absorbed.has(node)) {
      contribute(node.input[0], grads[0]!);
      continue;
    }
    const rule = gradientRules.get(node.op_type);
    if (!rule || nonDifferentiable.has(node.op_type)) {
      throw unsupportedNode(model, node, `no gradient rule for this op (differentiable ops: ${[...gradientRules.keys()].sort().join(', ')})`);
    }
    const ctx: RuleContext = {
      node,
      e,
      grads,
      needs: (i) => needed[i] ?? false,
      dims: (tensor) => e.dims(tensor, node),
      fail: (why) => {
        throw unsupportedNode(model, node, why);
      },
      producer: (tensor) => model.producerOf(tensor),
      usedOnlyHere: (tensor) => !seeds.has(tensor) && model.consumersOf(tensor).length === 1 && node.input.filter((i) => i === tensor).length === 1,
      absorb: (upstream) => absorbed.add(upstream),
    };
    const result = rule(ctx);
    result.forEach((g, i) => {
      if (g && needed[i]) contribute(node.input[i], g);
    });
  }
  return new Map(wrt.map((w) => [w, gradientOf(w)]));
}
