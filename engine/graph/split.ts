/**
 * Splits a model where some of its inputs enter: the head is every node that does not depend on
 * them, the tail every node that does. A search that feeds many values to those inputs (the
 * pruning gates of Fine-Pruning, on the last conv layer) then runs the head once per image and
 * only the tail per value, instead of the whole network each time.
 */
import { valueInfo } from './builder';
import type { OnnxModel } from './model';
import type { NodeProto } from './proto';
import { inferShapes } from './shapes';

export interface SplitModel {
  /** The image input to the tensors crossing the cut. */
  head: OnnxModel;
  /** The tensors crossing the cut, the given inputs, to the model's outputs. */
  tail: OnnxModel;
  /** The tensors crossing the cut, in the head's output order, with their per-sample float counts. */
  frontier: { name: string; perSample: number }[];
}

const INTEGER_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'TopK', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'IsNaN', 'IsInf']);

/** Whether a tensor is float32: shape tensors, comparisons and casts to another type are not. */
function isFloat(model: OnnxModel, name: string, ints: Map<string, unknown>): boolean {
  if (ints.has(name)) return false;
  const producer = model.producerOf(name);
  if (!producer) return true;
  if (INTEGER_OPS.has(producer.op_type)) return false;
  if (producer.op_type === 'Cast') return Number(producer.attribute?.find((a) => a.name === 'to')?.i ?? 0) === 1;
  return true;
}

/** Nodes reachable from the given tensors, in graph order. */
function downstreamOf(nodes: readonly NodeProto[], from: Iterable<string>): Set<NodeProto> {
  const reached = new Set<string>(from);
  const out = new Set<NodeProto>();
  for (const n of nodes) {
    if (n.input.some((i) => reached.has(i))) {
      out.add(n);
      for (const o of n.output) reached.add(o);
    }
  }
  return out;
}

/** The nodes the given tensors need, in graph order. */
function ancestorsOf(model: OnnxModel, tensors: Iterable<string>): Set<NodeProto> {
  const needed = new Set<NodeProto>();
  const stack = [...tensors];
  while (stack.length) {
    const producer = model.producerOf(stack.pop()!);
    if (!producer || needed.has(producer)) continue;
    needed.add(producer);
    stack.push(...producer.input.filter(Boolean));
  }
  return needed;
}

/** A copy holding only the given nodes, the initializers they use, and the given inputs and outputs. */
function subModel(model: OnnxModel, nodes: Set<NodeProto>, inputs: { name: string; dims: (number | string)[] | undefined }[], outputs: string[], shapes: Map<string, (number | string)[]>): OnnxModel {
  const copy = model.clone();
  const keep = new Set(model.nodes.flatMap((n, i) => (nodes.has(n) ? [i] : [])));
  const kept = copy.nodes.filter((_, i) => keep.has(i));
  copy.graph.node = kept;
  const used = new Set(kept.flatMap((n) => n.input));
  copy.graph.initializer = copy.graph.initializer.filter((t) => used.has(t.name ?? ''));
  const original = new Map(model.graph.input.map((v) => [v.name, v]));
  copy.graph.input = inputs.map((i) => original.get(i.name) ?? valueInfo(i.name, 'float32', i.dims));
  const originalOut = new Map(model.graph.output.map((v) => [v.name, v]));
  copy.graph.output = outputs.map((o) => originalOut.get(o) ?? valueInfo(o, 'float32', shapes.get(o)));
  copy.invalidate();
  return copy;
}

/**
 * The part of `model` that computes `outputs` (which become its only outputs): onnxruntime runs
 * every node of a session whatever is fetched, so reading an early layer through the whole
 * network costs a full forward pass.
 */
export function truncatedTo(model: OnnxModel, outputs: string[]): OnnxModel {
  const nodes = ancestorsOf(model, outputs);
  const used = new Set([...nodes].flatMap((n) => n.input));
  const inputs = model.inputs().filter((i) => used.has(i.name) || outputs.includes(i.name)).map((i) => ({ name: i.name, dims: undefined }));
  return subModel(model, nodes, inputs, outputs, inferShapes(model).shapes);
}

/**
 * The head and tail of `model` cut where `entering` (graph inputs other than the image) come in,
 * or undefined when the cut saves nothing (the tail reads the image itself) or a crossing tensor
 * is not float32 with a known per-sample shape. Where moving a crossing tensor's producer into the
 * tail makes fewer floats cross (a conv whose input is 4× smaller than its output, as in a ResNet
 * bottleneck), it moves: the kept tensors are what bounds the cut's memory.
 */
export function splitAtInputs(model: OnnxModel, image: string, entering: readonly string[]): SplitModel | undefined {
  const nodes = model.nodes;
  const enteringSet = new Set(entering);
  const initializers = new Set(model.initializerNames());
  const tailNodes = downstreamOf(nodes, entering);
  const fromImage = downstreamOf(nodes, [image]);
  /** Tensors the tail reads and does not make. */
  const crossingOf = (tail: Set<NodeProto>) => {
    const produced = new Set([...tail].flatMap((n) => n.output));
    return [...new Set([...tail].flatMap((n) => n.input))].filter((t) => t && !initializers.has(t) && !enteringSet.has(t) && !produced.has(t));
  };
  // Constant subgraphs (shape computations, Constant nodes) that the tail reads go with the tail.
  for (const n of ancestorsOf(model, crossingOf(tailNodes))) if (!fromImage.has(n)) tailNodes.add(n);
  const outputs = model.outputs().map((o) => o.name);
  if (!outputs.every((o) => [...tailNodes].some((n) => n.output.includes(o)))) return undefined;
  const { shapes, ints } = inferShapes(model);
  const perSample = (t: string) => {
    const dims = shapes.get(t);
    if (t === image || !dims || !isFloat(model, t, ints) || dims.slice(1).some((d) => typeof d !== 'number' || d <= 0)) return Infinity;
    return (dims.slice(1) as number[]).reduce((a, b) => a * b, 1);
  };
  const cost = (tensors: string[]) => tensors.reduce((sum, t) => sum + perSample(t), 0);
  let crossing = crossingOf(tailNodes);
  const produced = new Set([...tailNodes].flatMap((n) => n.output));
  // The crossing set with `producer` moved into the tail, from the current one (not from the whole
  // tail again): its outputs stop crossing, its inputs that nothing in the tail makes start to.
  const crossingWith = (producer: NodeProto) => {
    const outs = new Set(producer.output);
    const next = crossing.filter((t) => !outs.has(t));
    for (const i of producer.input) if (i && !initializers.has(i) && !enteringSet.has(i) && !produced.has(i) && !outs.has(i) && !next.includes(i)) next.push(i);
    return next;
  };
  for (let moved = true; moved; ) {
    moved = false;
    for (const t of crossing) {
      const producer = model.producerOf(t);
      if (!producer) continue;
      const after = crossingWith(producer);
      if (cost(after) < cost(crossing)) {
        tailNodes.add(producer);
        for (const o of producer.output) produced.add(o);
        crossing = after;
        moved = true;
        break;
      }
    }
  }
  if (crossing.length === 0 || !Number.isFinite(cost(crossing))) return undefined;
  const frontier = crossing.map((name) => ({ name, perSample: perSample(name) }));
  const orderedTail = new Set(nodes.filter((n) => tailNodes.has(n)));
  return {
    head: subModel(model, ancestorsOf(model, crossing), [{ name: image, dims: undefined }], crossing, shapes),
    tail: subModel(model, orderedTail, [...crossing.map((name) => ({ name, dims: shapes.get(name) })), ...entering.map((name) => ({ name, dims: undefined }))], outputs, shapes),
    frontier,
  };
}
