/**
 * Turns the caller's model into the forward half of a gradient graph: requested initializers
 * become inputs, static shape chains are folded, nodes are topologically sorted and brought
 * to one opset, and every tensor's shape (batch symbolic) is inferred.
 */
import { attrFloat, attrFloats, attrInt, attrInts, attrTensor } from '../graph/attributes';
import { foldShapeChains } from '../graph/fold';
import type { Dim, OnnxModel } from '../graph/model';
import type { NodeProto } from '../graph/proto';
import { inferShapes } from '../graph/shapes';
import { promoteInitializers } from '../graph/surgery';
import type { Tensor } from '../tensor';
import { unsupportedModel } from './errors';
import { normalizeOpset } from './opset';

export interface PreparedForward {
  /** A normalized copy; the caller's model is never changed. */
  model: OnnxModel;
  shapes: Map<string, Dim[]>;
  /** Initializers turned into inputs, with the values to feed by default. */
  promoted: Map<string, Tensor>;
  opset: number;
}

/** `observed`: measured shapes for what static inference cannot derive (observe.ts). */
export function prepareForward(original: OnnxModel, wrt: readonly string[], observed?: ReadonlyMap<string, Dim[]>): PreparedForward {
  const model = materializeAliases(original);
  const inputs = new Set(model.inputs().map((i) => i.name));
  for (const name of wrt) {
    if (!inputs.has(name) && !model.hasInitializer(name)) {
      throw unsupportedModel(model, `'${name}' is neither a graph input nor an initializer, so no gradient can be taken with respect to it`);
    }
  }
  const toPromote = [...new Set(wrt.filter((w) => !inputs.has(w)))];
  const promotedModel = toPromote.length > 0 ? promoteInitializers(model, toPromote) : { model, values: new Map<string, Tensor>() };
  const copy = foldShapeChains(promotedModel.model).model;
  constantsToInitializers(copy);
  sortTopologically(copy);
  let counter = 0;
  const taken = tensorAndNodeNames(copy);
  const opset = normalizeOpset({
    model: copy,
    shapes: inferShapes(copy, {}, observed).shapes,
    ints(values, hint) {
      let name = hint;
      while (taken.has(name) || copy.hasInitializer(name)) name = `${hint}_${++counter}`;
      taken.add(name);
      copy.setInitializer(name, { dtype: 'int64', dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) });
      return name;
    },
  });
  copy.invalidate();
  return { model: copy, shapes: inferShapes(copy, {}, observed).shapes, promoted: promotedModel.values, opset };
}

/**
 * torch's exporter stores equal parameters once and reaches the duplicates through Identity
 * nodes (untrained BN weights, for one); each alias becomes its own initializer so it can be
 * promoted and differentiated on its own.
 */
function materializeAliases(model: OnnxModel): OnnxModel {
  const aliases = model.nodes.filter((n) => n.op_type === 'Identity' && model.hasInitializer(n.input[0]) && !model.graph.output.some((o) => o.name === n.output[0]));
  if (aliases.length === 0) return model;
  const copy = model.clone();
  const dropped = new Set(aliases.map((n) => n.output[0]));
  for (const name of dropped) {
    const node = copy.producerOf(name)!;
    copy.setInitializer(name, copy.initializer(node.input[0])!);
  }
  copy.graph.node = copy.nodes.filter((n) => !(n.op_type === 'Identity' && dropped.has(n.output[0])));
  copy.invalidate();
  return copy;
}

/** Constant nodes become initializers, so rules read pads, axes and bounds one way. */
function constantsToInitializers(model: OnnxModel): void {
  const kept: NodeProto[] = [];
  for (const node of model.nodes) {
    const value = node.op_type === 'Constant' && (!node.domain || node.domain === 'ai.onnx') ? constantValue(node) : undefined;
    if (value) model.setInitializer(node.output[0], value);
    else kept.push(node);
  }
  model.graph.node = kept;
  model.invalidate();
}

function constantValue(node: NodeProto): Tensor | undefined {
  const t = attrTensor(node, 'value');
  if (t) return t;
  const ints = attrInts(node, 'value_ints'), int = attrInt(node, 'value_int');
  const fs = attrFloats(node, 'value_floats'), f = attrFloat(node, 'value_float');
  if (ints) return { dtype: 'int64', dims: [ints.length], data: BigInt64Array.from(ints.map(BigInt)) };
  if (int !== undefined) return { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(int)) };
  if (fs) return { dtype: 'float32', dims: [fs.length], data: Float32Array.from(fs) };
  if (f !== undefined) return { dtype: 'float32', dims: [], data: Float32Array.of(f) };
  return undefined;
}

/** Every tensor and node name the graph uses (for choosing fresh ones). */
export function tensorAndNodeNames(model: OnnxModel): Set<string> {
  const names = new Set<string>();
  for (const n of model.nodes) {
    for (const t of [...n.input, ...n.output]) if (t) names.add(t);
    if (n.name) names.add(n.name);
  }
  for (const v of [...model.graph.input, ...model.graph.output]) names.add(v.name);
  for (const t of model.graph.initializer) names.add(t.name ?? '');
  return names;
}

/** Kahn's algorithm, keeping the file's order among ready nodes. */
export function sortTopologically(model: OnnxModel): void {
  const nodes = model.nodes;
  const producedBy = new Map<string, number>();
  nodes.forEach((n, i) => n.output.forEach((o) => o && producedBy.set(o, i)));
  const waiting = new Array<number>(nodes.length).fill(0);
  const dependents: number[][] = nodes.map(() => []);
  nodes.forEach((n, i) => {
    const deps = new Set<number>();
    for (const input of n.input) {
      const p = input ? producedBy.get(input) : undefined;
      if (p !== undefined && p !== i) deps.add(p);
    }
    waiting[i] = deps.size;
    for (const d of deps) dependents[d].push(i);
  });
  const ready: number[] = [];
  nodes.forEach((_, i) => waiting[i] === 0 && ready.push(i));
  const order: NodeProto[] = [];
  const readyHeap = ready.sort((a, b) => a - b);
  while (readyHeap.length > 0) {
    const i = readyHeap.shift()!;
    order.push(nodes[i]);
    for (const d of dependents[i]) {
      if (--waiting[d] === 0) {
        let at = readyHeap.findIndex((x) => x > d);
        if (at < 0) at = readyHeap.length;
        readyHeap.splice(at, 0, d);
      }
    }
  }
  if (order.length !== nodes.length) throw unsupportedModel(model, 'the graph has a cycle');
  model.graph.node = order;
  model.invalidate();
}
