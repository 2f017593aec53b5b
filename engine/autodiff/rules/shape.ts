/**
 * Ops that only move elements: the gradient moves them back. Reshape-like ops reshape to the
 * input's run-time shape; Concat and Split swap roles; Slice scatters into zeros by padding
 * (after spreading strided picks apart); constant Pad crops again (negative pads).
 */
import { attrInt, attrInts, attrString } from '../../graph/attributes';
import { constantInts, normalizeAxis, outputGrad, type GradientRule, type RuleContext } from './types';

function staticSize(ctx: RuleContext, tensor: string, axis: number): number {
  const d = ctx.dims(tensor)[axis];
  if (typeof d !== 'number') ctx.fail(`the size of '${tensor}' along axis ${axis} must be static`);
  return d;
}

const reshapeBack: GradientRule = (ctx) => {
  const { e, node } = ctx;
  if (node.input.slice(1).some((_, i) => ctx.needs(i + 1))) ctx.fail('the shape / axes input cannot be differentiated');
  return [e.reshapeLike(outputGrad(ctx), node.input[0])];
};

const transpose: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const rank = ctx.dims(node.input[0]).length;
  const perm = attrInts(node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const inverse = new Array<number>(rank);
  perm.forEach((p, i) => (inverse[p] = i));
  return [e.op('Transpose', [outputGrad(ctx)], { perm: inverse })];
};

const concat: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const rank = ctx.dims(node.output[0]).length;
  const axis = normalizeAxis(attrInt(node, 'axis', 0), rank);
  const sizes = node.input.map((input) => staticSize(ctx, input, axis));
  if (node.input.length === 1) return [outputGrad(ctx)];
  const parts = e.nodeWithOutputs('Split', [outputGrad(ctx), e.ints(sizes)], sizes.length, { axis });
  return parts.map((p, i) => (ctx.needs(i) ? p : undefined));
};

const split: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const rank = ctx.dims(node.input[0]).length;
  const axis = normalizeAxis(attrInt(node, 'axis', 0), rank);
  const parts = node.output.map((o, i) => ctx.grads[i] ?? e.zerosLike(o));
  return [parts.length === 1 ? parts[0] : e.op('Concat', parts, { axis }), undefined];
};

/** Normalized start and (positive) count along one sliced axis, as ONNX clamps them. */
function sliceAxis(dim: number, start: number, end: number, step: number): { first: number; count: number } {
  const clamp = (v: number) => {
    const w = v < 0 ? v + dim : v;
    return step > 0 ? Math.min(Math.max(w, 0), dim) : Math.min(Math.max(w, -1), dim - 1);
  };
  const s = clamp(start), t = clamp(end);
  const count = Math.max(0, Math.ceil((t - s) / step));
  return { first: s, count };
}

const slice: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const [x, startsIn, endsIn, axesIn, stepsIn] = node.input;
  if ([1, 2, 3, 4].some((i) => node.input[i] && ctx.needs(i))) ctx.fail('the starts / ends / axes / steps inputs cannot be differentiated');
  const starts = constantInts(ctx, startsIn, 'Slice starts')!;
  const ends = constantInts(ctx, endsIn, 'Slice ends')!;
  const rank = ctx.dims(x).length;
  const axes = (constantInts(ctx, axesIn, 'Slice axes') ?? starts.map((_, i) => i)).map((a) => normalizeAxis(a, rank));
  const steps = constantInts(ctx, stepsIn, 'Slice steps') ?? starts.map(() => 1);
  let g = outputGrad(ctx);
  const pads = new Array<number>(2 * rank).fill(0);
  const current = [...ctx.dims(node.output[0])];
  axes.forEach((axis, i) => {
    const dim = staticSize(ctx, x, axis);
    const step = steps[i];
    const { first, count } = sliceAxis(dim, starts[i], ends[i], step);
    let lowest = first;
    if (step < 0) {
      // Picked in descending order: reverse, then treat as ascending from the lowest index.
      g = e.op('Slice', [g, e.ints([-1]), e.ints([-(2 ** 53)]), e.ints([axis]), e.ints([-1])]);
      lowest = first + (count - 1) * step;
    }
    const stride = Math.abs(step);
    let span = count;
    if (stride > 1 && count > 0) {
      // Spread the picks `stride` apart: [.., count, ..] → [.., count, stride, ..] → [.., count·stride, ..].
      span = count * stride;
      current[axis] = span;
      const target = current.map((d, k) => (k < axis ? 0 : typeof d === 'number' ? d : -1));
      if (target.filter((d) => d === -1).length > 1) ctx.fail('strided slicing needs static sizes after the sliced axis');
      const unsqueezed = e.op('Unsqueeze', [g, e.ints([axis + 1])]);
      const widened = e.op('Pad', [unsqueezed, e.ints(padsFor(rank + 1, axis + 1, 0, stride - 1))]);
      g = e.op('Reshape', [widened, e.ints(target)]);
    }
    pads[axis] = lowest;
    pads[axis + rank] = dim - lowest - span;
  });
  return [e.op('Pad', [g, e.ints(pads)]), undefined, undefined, undefined, undefined];
};

function padsFor(rank: number, axis: number, before: number, after: number): number[] {
  const p = new Array<number>(2 * rank).fill(0);
  p[axis] = before;
  p[axis + rank] = after;
  return p;
}

const pad: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const mode = attrString(node, 'mode', 'constant');
  if (mode !== 'constant') ctx.fail(`Pad mode '${mode}' is not supported (only 'constant')`);
  if ([1, 2, 3].some((i) => node.input[i] && ctx.needs(i))) ctx.fail('the pads / value / axes inputs cannot be differentiated');
  const rank = ctx.dims(node.input[0]).length;
  const given = constantInts(ctx, node.input[1], 'Pad pads');
  if (!given) return ctx.fail('pads are missing');
  const axes = (constantInts(ctx, node.input[3], 'Pad axes') ?? Array.from({ length: rank }, (_, i) => i)).map((a) => normalizeAxis(a, rank));
  const pads = new Array<number>(2 * rank).fill(0);
  axes.forEach((a, i) => {
    pads[a] = -given[i];
    pads[a + rank] = -given[i + axes.length];
  });
  return [e.op('Pad', [outputGrad(ctx), e.ints(pads)]), undefined, undefined, undefined];
};

/**
 * Gather with constant indices (ViT's class token x[:, 0], a fixed channel order): the picks go
 * back where they came from. A scalar index or an increasing run pads g with zeros along the
 * axis; any other pattern (repeats add up) multiplies by the [picks, size] one-hot matrix.
 */
const gather: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const [data, indicesIn] = node.input;
  if (ctx.needs(1)) ctx.fail('the indices cannot be differentiated');
  const dataDims = ctx.dims(data);
  const rank = dataDims.length;
  const axis = normalizeAxis(attrInt(node, 'axis', 0), rank);
  const size = staticSize(ctx, data, axis);
  const constant = e.model.initializer(indicesIn);
  if (!constant || (constant.dtype !== 'int64' && constant.dtype !== 'int32')) return ctx.fail(`the indices '${indicesIn}' must be a constant`);
  const indices = Array.from(constant.data as ArrayLike<number | bigint>, (v) => {
    const i = Number(v);
    return i < 0 ? i + size : i;
  });
  let g = outputGrad(ctx);
  const indexRank = constant.dims.length;
  const run = indices.every((v, i) => v === indices[0] + i);
  if (run && indexRank <= 1) {
    if (indexRank === 0) g = e.op('Unsqueeze', [g, e.ints([axis])]);
    const first = indices[0] ?? 0;
    return [e.op('Pad', [g, e.ints(padsFor(rank, axis, first, size - first - indices.length))]), undefined];
  }
  // [before, picks, after] → [before, after, picks] · onehot[picks, size] → [before, size, after].
  const picks = indices.length;
  const oneHot = new Array<number>(picks * size).fill(0);
  indices.forEach((v, i) => (oneHot[i * size + v] += 1));
  const grouped = e.op('Reshape', [g, e.ints([...dataDims.slice(0, axis).map((d) => (typeof d === 'number' ? d : 0)), picks, -1])]);
  const lead = axis;
  const moved = e.op('Transpose', [grouped], { perm: [...Array.from({ length: lead }, (_, i) => i), lead + 1, lead] });
  const spread = e.op('MatMul', [moved, e.floats(oneHot, [picks, size])]);
  const back = e.op('Transpose', [spread], { perm: [...Array.from({ length: lead }, (_, i) => i), lead + 1, lead] });
  return [e.reshapeLike(back, data), undefined];
};

export const shapeRules: Record<string, GradientRule> = {
  Gather: gather,
  Flatten: reshapeBack,
  Reshape: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: transpose,
  Concat: concat,
  Split: split,
  Slice: slice,
  Pad: pad,
};
