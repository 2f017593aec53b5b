/**
 * Graph surgery the analyses need. Every function returns a modified copy; the model passed
 * in is never changed, so one loaded model can feed several analyses side by side.
 */
import { valueInfo } from './builder';
import type { Dim, OnnxModel } from './model';
import { inferShapes } from './shapes';
import type { NodeProto } from './proto';
import { sizeOf, type Tensor } from '../tensor';

function uniqueName(model: OnnxModel, hint: string): string {
  const taken = new Set<string>();
  for (const n of model.nodes) {
    for (const t of [...n.input, ...n.output]) taken.add(t);
    if (n.name) taken.add(n.name);
  }
  for (const v of [...model.graph.input, ...model.graph.output]) taken.add(v.name);
  let name = hint;
  for (let i = 1; taken.has(name); i++) name = `${hint}_${i}`;
  return name;
}

/** Adds intermediate tensors as extra graph outputs (float32, shape from inference where known). */
export function exposeTensors(model: OnnxModel, tensors: string[]): OnnxModel {
  const copy = model.clone();
  const present = new Set(copy.graph.output.map((o) => o.name));
  const { shapes } = inferShapes(copy);
  for (const t of tensors) {
    if (present.has(t)) continue;
    if (!copy.producerOf(t) && !copy.inputs().some((i) => i.name === t)) {
      throw new Error(`${model.source}: no tensor named '${t}' to expose`);
    }
    copy.graph.output.push(valueInfo(t, 'float32', shapes.get(t)));
    present.add(t);
  }
  copy.invalidate();
  return copy;
}

export interface ChannelAffine {
  /** The model with `out = x * scale + shift` inserted. */
  model: OnnxModel;
  /** Names of the new graph inputs, each of shape [channels]. */
  scaleInput: string;
  shiftInput: string;
  channels: number;
  /** The tensor that was transformed (the node's first output). */
  tensor: string;
}

/**
 * Inserts a per-channel scale and shift after a node: every consumer of the node's first output
 * (and the graph output of that name, if any) now sees `x * scale + shift`, with scale and shift
 * new graph inputs of shape [C] (channel axis 1). Feeding ones and zeros reproduces the original model.
 */
export function insertChannelAffine(model: OnnxModel, nodeName: string, names: { scale?: string; shift?: string } = {}): ChannelAffine {
  const copy = model.clone();
  const node = copy.findNode(nodeName);
  if (!node) throw new Error(`${model.source}: no node named '${nodeName}'`);
  const tensor = node.output[0];
  const shape = inferShapes(copy).shapes.get(tensor);
  const channels = shape?.[1];
  if (!shape || typeof channels !== 'number') throw new Error(`${model.source}: the channel count of '${tensor}' (output of ${nodeName}) is not known statically`);
  const rank = shape.length;
  const scaleInput = names.scale ?? uniqueName(copy, `${nodeName}.scale`);
  const shiftInput = names.shift ?? uniqueName(copy, `${nodeName}.shift`);
  const bshape = uniqueName(copy, `${nodeName}.affine_shape`);
  copy.setInitializer(bshape, { dtype: 'int64', dims: [rank], data: BigInt64Array.from([1n, BigInt(channels), ...new Array<bigint>(rank - 2).fill(1n)]) });
  const scaled = uniqueName(copy, `${tensor}.scaled`);
  const out = uniqueName(copy, `${tensor}.affine`);
  const s4 = uniqueName(copy, `${scaleInput}.bcast`), b4 = uniqueName(copy, `${shiftInput}.bcast`);
  for (const n of copy.nodes) n.input = n.input.map((i) => (i === tensor ? out : i));
  for (const o of copy.graph.output) if (o.name === tensor) o.name = out;
  const at = copy.nodes.indexOf(node) + 1;
  const added: NodeProto[] = [
    { op_type: 'Reshape', input: [scaleInput, bshape], output: [s4], attribute: [], name: uniqueName(copy, `${nodeName}/affine_scale_reshape`) },
    { op_type: 'Reshape', input: [shiftInput, bshape], output: [b4], attribute: [], name: uniqueName(copy, `${nodeName}/affine_shift_reshape`) },
    { op_type: 'Mul', input: [tensor, s4], output: [scaled], attribute: [], name: uniqueName(copy, `${nodeName}/affine_mul`) },
    { op_type: 'Add', input: [scaled, b4], output: [out], attribute: [], name: uniqueName(copy, `${nodeName}/affine_add`) },
  ];
  copy.nodes.splice(at, 0, ...added);
  copy.graph.input.push(valueInfo(scaleInput, 'float32', [channels]), valueInfo(shiftInput, 'float32', [channels]));
  copy.invalidate();
  return { model: copy, scaleInput, shiftInput, channels, tensor };
}

/** A copy with some initializers' values replaced (same names; shapes may change). */
export function replaceInitializers(model: OnnxModel, values: Record<string, Tensor> | Map<string, Tensor>): OnnxModel {
  const copy = model.clone();
  const entries = values instanceof Map ? [...values] : Object.entries(values);
  for (const [name, tensor] of entries) {
    if (!copy.hasInitializer(name)) throw new Error(`${model.source}: no initializer named '${name}'`);
    copy.setInitializer(name, tensor);
  }
  return copy;
}

/**
 * Turns initializers into graph inputs (e.g. to differentiate with respect to weights or to
 * feed BN parameters per call). Their current values are returned so callers can feed them.
 */
export function promoteInitializers(model: OnnxModel, names: string[]): { model: OnnxModel; values: Map<string, Tensor> } {
  const copy = model.clone();
  const values = new Map<string, Tensor>();
  for (const name of names) {
    const t = copy.initializer(name);
    if (!t) throw new Error(`${model.source}: no initializer named '${name}'`);
    values.set(name, t);
    const dims: Dim[] = [...t.dims];
    copy.graph.input = copy.graph.input.filter((i) => i.name !== name);
    copy.graph.input.push(valueInfo(name, t.dtype, dims));
  }
  const promoted = new Set(names);
  copy.graph.initializer = copy.graph.initializer.filter((t) => !promoted.has(t.name ?? ''));
  copy.invalidate();
  return { model: copy, values };
}

/**
 * Gives every parameter its own initializer: torch.onnx.export stores two equal parameters once
 * and makes the second an Identity of the first (a ResNet's shortcut BN bias equal to a block's
 * bn2 bias, say). Every method that reads or rewrites one layer's parameters (BN statistics, BNA,
 * pruning, unlearning) needs them as that layer's own, so each such Identity becomes a copy of the
 * initializer under its output's name; the copy shares the stored bytes until it is rewritten.
 * The copies together hold at most as many values as the file's initializers, so a file of many
 * Identity nodes on one large tensor cannot make the model it becomes (and every session built
 * from it) many times its own size; aliases past that stay as they are.
 * Changes `model` in place; returns how many aliases were resolved.
 */
export function unshareInitializerAliases(model: OnnxModel): number {
  const graphOutputs = new Set(model.graph.output.map((o) => o.name));
  const protos = new Map(model.graph.initializer.map((t) => [t.name ?? '', t]));
  const valuesOf = (t: { dims?: unknown[] }) => sizeOf((t.dims ?? []).map(Number));
  let budget = model.graph.initializer.reduce((a, t) => a + valuesOf(t), 0);
  const resolved: NodeProto[] = [];
  for (const node of model.graph.node) {
    const source = node.op_type === 'Identity' && (node.domain ?? '') === '' ? protos.get(node.input[0] ?? '') : undefined;
    const out = node.output[0];
    if (!source || !out || graphOutputs.has(out) || protos.has(out) || valuesOf(source) > budget) continue;
    budget -= valuesOf(source);
    const copy = { ...source, name: out };
    model.graph.initializer.push(copy);
    protos.set(out, copy);
    resolved.push(node);
  }
  if (resolved.length) {
    const drop = new Set(resolved);
    model.graph.node = model.graph.node.filter((n) => !drop.has(n));
    model.invalidate();
  }
  return resolved.length;
}
