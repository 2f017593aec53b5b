/**
 * Element-wise activations. Derivatives at kinks follow PyTorch's backward formulas
 * (relu'(0) = 0, hardswish boundaries x < −3 → 0, x ≤ 3 → x/3 + ½, clip's bounds excluded
 * as in hardtanh / ReLU6), and masks are read from the output where that is exact, since the
 * output stays alive for the next layer anyway.
 */
import { attrFloat, attrInt } from '../../graph/attributes';
import { positiveMask } from './indicator';
import { outputGrad, type GradientRule } from './types';

/**
 * g·[y > 0]. On feature maps the mask stays in ONNX Runtime's blocked layout next to the
 * convolutions (see indicator.ts); elsewhere it is Greater→Cast, which ONNX Runtime runs faster
 * than Where or Sign.
 */
const relu: GradientRule = (ctx) => {
  const y = ctx.node.output[0];
  return [ctx.e.mul(outputGrad(ctx), positiveMask(ctx.e, y, ctx.dims(y)))];
};

const leakyRelu: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const g = outputGrad(ctx);
  const alpha = attrFloat(node, 'alpha', 0.01);
  return [e.op('Where', [e.op('Greater', [node.input[0], e.scalar(0)]), g, e.mul(g, e.scalar(alpha))])];
};

const prelu: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const g = outputGrad(ctx);
  const [x, slope] = node.input;
  const positive = e.op('Greater', [x, e.scalar(0)]);
  const out: (string | undefined)[] = [undefined, undefined];
  if (ctx.needs(0)) out[0] = e.op('Where', [positive, g, e.mul(g, slope)]);
  if (ctx.needs(1)) out[1] = e.unbroadcast(e.op('Where', [positive, e.scalar(0), e.mul(g, x)]), ctx.dims(node.output[0]), slope, node);
  return out;
};

const sigmoid: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const y = node.output[0];
  return [e.mul(outputGrad(ctx), e.mul(y, e.op('Sub', [e.scalar(1), y])))];
};

const tanh: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const y = node.output[0];
  return [e.mul(outputGrad(ctx), e.op('Sub', [e.scalar(1), e.mul(y, y)]))];
};

/** y = clamp(αx + β, 0, 1): the slope is α exactly where 0 < y < 1. */
const hardSigmoid: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const alpha = attrFloat(node, 'alpha', 0.2);
  const y = node.output[0];
  const inside = e.op('And', [e.op('Greater', [y, e.scalar(0)]), e.op('Less', [y, e.scalar(1)])]);
  return [e.op('Where', [inside, e.mul(outputGrad(ctx), e.scalar(alpha)), e.scalar(0)])];
};

/** y = x·clamp(x/6 + ½, 0, 1): dy/dx = 0 below −3, x/3 + ½ up to 3, 1 above (PyTorch's boundaries). */
const hardSwish: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const x = node.input[0];
  const middle = e.op('Add', [e.mul(x, e.scalar(1 / 3)), e.scalar(0.5)]);
  const slope = e.op('Where', [e.op('Less', [x, e.scalar(-3)]), e.scalar(0), e.op('Where', [e.op('LessOrEqual', [x, e.scalar(3)]), middle, e.scalar(1)])]);
  return [e.mul(outputGrad(ctx), slope)];
};

/** Gradient passes strictly inside (min, max); bounds come from inputs (opset 11+). */
const clip: GradientRule = (ctx) => {
  const { e, node } = ctx;
  if (ctx.needs(1) || ctx.needs(2)) ctx.fail('gradients with respect to Clip bounds are not supported');
  const x = node.input[0];
  const conditions: string[] = [];
  if (node.input[1]) conditions.push(e.op('Greater', [x, node.input[1]]));
  if (node.input[2]) conditions.push(e.op('Less', [x, node.input[2]]));
  const g = outputGrad(ctx);
  if (conditions.length === 0) return [g];
  const inside = conditions.length === 1 ? conditions[0] : e.op('And', conditions);
  return [e.op('Where', [inside, g, e.scalar(0)])];
};

const identity: GradientRule = (ctx) => [outputGrad(ctx)];

/** Only float32 → float32 casts carry a gradient (the graph computes in float32). */
const cast: GradientRule = (ctx) => {
  if (attrInt(ctx.node, 'to', 0) !== 1) ctx.fail('only casts to float32 can be differentiated');
  return [outputGrad(ctx)];
};

const neg: GradientRule = (ctx) => [ctx.e.op('Neg', [outputGrad(ctx)])];

const exp: GradientRule = (ctx) => [ctx.e.mul(outputGrad(ctx), ctx.node.output[0])];

const log: GradientRule = (ctx) => [ctx.e.op('Div', [outputGrad(ctx), ctx.node.input[0]])];

/** d√x = 1 / (2√x). */
const sqrt: GradientRule = (ctx) => {
  const { e, node } = ctx;
  return [e.op('Div', [e.mul(outputGrad(ctx), e.scalar(0.5)), node.output[0]])];
};

/** d(1/x) = −y². */
const reciprocal: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const y = node.output[0];
  return [e.op('Neg', [e.mul(outputGrad(ctx), e.mul(y, y))])];
};

export const activationRules: Record<string, GradientRule> = {
  Relu: relu,
  LeakyRelu: leakyRelu,
  PRelu: prelu,
  Sigmoid: sigmoid,
  Tanh: tanh,
  HardSigmoid: hardSigmoid,
  HardSwish: hardSwish,
  Clip: clip,
  Identity: identity,
  Cast: cast,
  Neg: neg,
  Exp: exp,
  Log: log,
  Sqrt: sqrt,
  Reciprocal: reciprocal,
};
