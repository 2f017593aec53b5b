/**
 * Emits the backward nodes: fresh names, shared constants, shape-aware helpers (reduce to a
 * broadcast operand's shape, reshape like a forward tensor) in the prepared graph's opset form
 * (axes and shapes as inputs).
 */
import { GraphBuilder, type AttrValue } from '../graph/builder';
import type { Dim, OnnxModel } from '../graph/model';
import type { NodeProto } from '../graph/proto';
import { unsupportedNode } from './errors';

export class Emitter {
  readonly builder: GraphBuilder;
  private readonly constants = new Map<string, string>();
  private readonly shapeOfCache = new Map<string, string>();
  private readonly batchCache = new Map<string, string>();
  /**
   * Gradients that are another gradient times a per-channel (axis 1) factor [C]: a Conv below
   * folds the factor into its small backward kernel instead of reading the scaled tensor.
   */
  readonly channelScaled = new Map<string, { base: string; scale: string }>();
  /**
   * Shapes of gradient tensors (each has its forward tensor's shape), declared in the graph:
   * ONNX Runtime's shape inference cannot see through a computed output shape (MaxUnpool's),
   * and its blocked-layout pass multiplies or adds two tensors in that layout only when it can
   * prove their shapes equal.
   */
  readonly gradientShapes = new Map<string, Dim[]>();

  constructor(
    readonly model: OnnxModel,
    /** Shapes of forward tensors (batch symbolic); gradients share their tensor's shape. */
    readonly shapes: Map<string, Dim[]>,
    opset: number,
    taken: Iterable<string>,
  ) {
    this.builder = new GraphBuilder('gradient', opset, taken);
  }

  get nodes(): NodeProto[] {
    return this.builder.nodes;
  }

  fresh(hint: string): string {
    return this.builder.fresh(hint);
  }

  op(type: string, inputs: string[], attrs: Record<string, AttrValue | undefined> = {}, hint?: string): string {
    return this.builder.node(type, inputs, attrs, { outputs: [this.fresh(hint ?? `${type}_grad`)], name: hint ? `${hint}/${type}` : undefined })[0];
  }

  nodeWithOutputs(type: string, inputs: string[], outputs: number, attrs: Record<string, AttrValue | undefined> = {}, hint?: string): string[] {
    const names = Array.from({ length: outputs }, () => this.fresh(hint ?? `${type}_grad`));
    return this.builder.node(type, inputs, attrs, { outputs: names });
  }

  /** A float32 constant (scalar unless dims given), shared between uses. */
  floats(values: readonly number[], dims: readonly number[] = []): string {
    const key = `f:${dims.join('x')}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.builder.initializer('grad_const', { dtype: 'float32', dims: [...dims], data: Float32Array.from(values) });
      this.constants.set(key, name);
    }
    return name;
  }

  scalar(value: number): string {
    return this.floats([value]);
  }

  /** A scalar int64 constant, shared between uses. */
  ints0(value: number): string {
    const key = `i0:${value}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.builder.initializer('grad_int', { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(value)) });
      this.constants.set(key, name);
    }
    return name;
  }

  /** A 1-D int64 constant, shared between uses. */
  ints(values: readonly number[]): string {
    const key = `i:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.builder.initializer('grad_ints', { dtype: 'int64', dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) });
      this.constants.set(key, name);
    }
    return name;
  }

  /**
   * The run-time shape of a forward tensor: a constant when static; when only the batch is
   * symbolic, built from a graph input's batch size, so that no backward node reads (and keeps
   * alive) the activation itself.
   */
  shapeOf(tensor: string): string {
    let name = this.shapeOfCache.get(tensor);
    if (name) return name;
    const d = this.shapes.get(tensor);
    const batch = d && typeof d[0] === 'string' && d.slice(1).every((x) => typeof x === 'number') ? this.batchSize(d[0]) : undefined;
    if (d && d.every((x) => typeof x === 'number')) name = this.ints(d as number[]);
    else if (batch) name = this.op('Concat', [batch, this.ints(d!.slice(1) as number[])], { axis: 0 }, `${tensor}_shape`);
    else name = this.op('Shape', [tensor], {}, `${tensor}_shape`);
    this.shapeOfCache.set(tensor, name);
    return name;
  }

  /** [size] of a symbolic dimension, read from the first graph input whose leading dim it is. */
  private batchSize(symbol: string): string | undefined {
    let name = this.batchCache.get(symbol);
    if (name) return name;
    const source = this.model.inputs().find((i) => i.dims[0] === symbol);
    if (!source) return undefined;
    name = this.op('Shape', [source.name], { start: 0, end: 1 }, `${symbol}_size`);
    this.batchCache.set(symbol, name);
    return name;
  }

  dims(tensor: string, node: NodeProto): Dim[] {
    const d = this.shapes.get(tensor);
    if (!d || d.some((x) => x === '?')) throw unsupportedNode(this.model, node, `the shape of '${tensor}' is not known statically`);
    return d;
  }

  staticDims(tensor: string, node: NodeProto, what = tensor): number[] {
    const d = this.dims(tensor, node);
    if (d.some((x) => typeof x !== 'number')) throw unsupportedNode(this.model, node, `${what} needs a static shape, got [${d.join(', ')}]`);
    return d as number[];
  }

  /** g reshaped to the shape of forward tensor `like`. */
  reshapeLike(g: string, like: string): string {
    return this.op('Reshape', [g, this.shapeOf(like)]);
  }

  reduceSum(x: string, axes: readonly number[], keepdims: boolean): string {
    return this.op('ReduceSum', [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }

  /**
   * Sums a gradient of broadcast shape `outDims` down to the shape of `operand`
   * (the inverse of numpy broadcasting), reshaping when leading axes are dropped.
   */
  unbroadcast(g: string, outDims: readonly Dim[], operand: string, node: NodeProto): string {
    const inDims = this.dims(operand, node);
    const lead = outDims.length - inDims.length;
    const axes: number[] = [];
    for (let i = 0; i < outDims.length; i++) {
      if (i < lead) {
        axes.push(i);
        continue;
      }
      const a = inDims[i - lead], b = outDims[i];
      if (a === b) continue;
      if (a === 1) axes.push(i);
      else throw unsupportedNode(this.model, node, `cannot tell how '${operand}' [${inDims.join(', ')}] broadcasts to [${outDims.join(', ')}]`);
    }
    if (axes.length === 0) return g;
    const summed = this.reduceSum(g, axes, true);
    return lead > 0 ? this.reshapeLike(summed, operand) : summed;
  }

  zerosLike(tensor: string): string {
    return this.op('ConstantOfShape', [this.shapeOf(tensor)], { value: { dtype: 'float32', dims: [1], data: new Float32Array(1) } });
  }

  /** The sum of gradient contributions (one node for any count). */
  sum(parts: string[]): string {
    if (parts.length === 1) return parts[0];
    return parts.length === 2 ? this.op('Add', parts) : this.op('Sum', parts);
  }

  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
}
