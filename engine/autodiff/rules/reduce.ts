/**
 * ReduceSum / ReduceMean / ReduceMax / ReduceMin (axes as input, keepdims, noop_with_empty_axes)
 * and Softmax / LogSoftmax. ReduceMax / ReduceMin share the gradient equally among the elements
 * that attain the extremum, as torch.amax / amin (and max / min without a dim) do.
 */
import { attrInt } from '../../graph/attributes';
import { sizeOf } from '../../tensor';
import { constantInts, normalizeAxis, outputGrad, type GradientRule, type RuleContext } from './types';

/** The reduced axes (sorted; undefined when the node is a no-op) and a way to restore them on a reduced tensor. */
function reducedAxes(ctx: RuleContext): { axes: number[]; keep: (reduced: string) => string } | undefined {
  const { e, node } = ctx;
  const xDims = ctx.dims(node.input[0]);
  if (node.input[1] && ctx.needs(1)) ctx.fail('the axes input cannot be differentiated');
  const given = constantInts(ctx, node.input[1], `${node.op_type} axes`) ?? [];
  if (given.length === 0 && attrInt(node, 'noop_with_empty_axes', 0) === 1) return undefined;
  const axes = (given.length > 0 ? given : xDims.map((_, i) => i)).map((a) => normalizeAxis(a, xDims.length)).sort((a, b) => a - b);
  const keptDims = attrInt(node, 'keepdims', 1) === 1;
  return { axes, keep: (reduced) => (keptDims ? reduced : e.op('Unsqueeze', [reduced, e.ints(axes)])) };
}

function reduceBack(ctx: RuleContext, mean: boolean): (string | undefined)[] {
  const { e, node } = ctx;
  const x = node.input[0];
  const xDims = ctx.dims(x);
  const g = outputGrad(ctx);
  const reduced = reducedAxes(ctx);
  if (!reduced) return [g, undefined];
  const { axes } = reduced;
  const kept = reduced.keep(g);
  let spread = e.op('Expand', [kept, e.shapeOf(x)]);
  if (mean) {
    const reduced = axes.map((a) => xDims[a]);
    const scale = reduced.every((d) => typeof d === 'number')
      ? e.scalar(1 / sizeOf(reduced as number[]))
      : e.op('Div', [e.op('Cast', [e.op('Size', [node.output[0]])], { to: 1 }), e.op('Cast', [e.op('Size', [x])], { to: 1 })]);
    spread = e.mul(spread, scale);
  }
  return [spread, undefined];
}

/** dx = g·[x = y] / #{x = y} over each reduced group. */
const reduceExtremum: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const g = outputGrad(ctx);
  const reduced = reducedAxes(ctx);
  if (!reduced) return [g, undefined];
  const attains = e.op('Cast', [e.op('Equal', [node.input[0], reduced.keep(node.output[0])])], { to: 1 });
  const perElement = e.op('Div', [reduced.keep(g), e.reduceSum(attains, reduced.axes, true)]);
  return [e.mul(attains, perElement), undefined];
};

/** dx = y·(g − Σ g·y) along the axis. */
const softmax: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const y = node.output[0];
  const axis = normalizeAxis(attrInt(node, 'axis', -1), ctx.dims(y).length);
  const g = outputGrad(ctx);
  const dot = e.reduceSum(e.mul(g, y), [axis], true);
  return [e.mul(y, e.op('Sub', [g, dot]))];
};

/** dx = g − softmax·Σ g along the axis. */
const logSoftmax: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const y = node.output[0];
  const axis = normalizeAxis(attrInt(node, 'axis', -1), ctx.dims(y).length);
  const g = outputGrad(ctx);
  return [e.op('Sub', [g, e.mul(e.op('Exp', [y]), e.reduceSum(g, [axis], true))])];
};

export const reduceRules: Record<string, GradientRule> = {
  ReduceSum: (ctx) => reduceBack(ctx, false),
  ReduceMean: (ctx) => reduceBack(ctx, true),
  ReduceMax: reduceExtremum,
  ReduceMin: reduceExtremum,
  Softmax: softmax,
  LogSoftmax: logSoftmax,
};
