/** Broadcasting arithmetic: each operand's gradient is summed back down to its own shape. */
import { outputGrad, type GradientRule, type RuleContext } from './types';

function perOperand(ctx: RuleContext, local: (i: number, g: string) => string): (string | undefined)[] {
  const { node, e } = ctx;
  const g = outputGrad(ctx);
  const outDims = ctx.dims(node.output[0]);
  return node.input.map((operand, i) => (ctx.needs(i) ? e.unbroadcast(local(i, g), outDims, operand, node) : undefined));
}

const add: GradientRule = (ctx) => perOperand(ctx, (_, g) => g);

const sub: GradientRule = (ctx) => perOperand(ctx, (i, g) => (i === 0 ? g : ctx.e.op('Neg', [g])));

const mul: GradientRule = (ctx) => perOperand(ctx, (i, g) => ctx.e.mul(g, ctx.node.input[1 - i]));

/** d(a/b)/da = 1/b; d(a/b)/db = −(a/b)/b. */
const div: GradientRule = (ctx) =>
  perOperand(ctx, (i, g) => {
    const { e, node } = ctx;
    const [, b] = node.input;
    return i === 0 ? e.op('Div', [g, b]) : e.op('Neg', [e.op('Div', [e.mul(g, node.output[0]), b])]);
  });

/**
 * y = aᵇ: da = g·b·aᵇ⁻¹ (g·2a for squares, as LayerNorm decomposed below opset 17 has them).
 * Exponents are constants in the exports seen; their gradient is refused, not guessed.
 */
const pow: GradientRule = (ctx) => {
  const { e, node } = ctx;
  if (ctx.needs(1)) ctx.fail('gradients with respect to the exponent are not supported');
  const [a, b] = node.input;
  const constant = e.model.initializer(b);
  const exponent = constant && constant.data.length === 1 ? Number(constant.data[0]) : undefined;
  const g = outputGrad(ctx);
  let slope: string;
  if (exponent === 2) slope = e.mul(a, e.scalar(2));
  else if (exponent === 1) slope = e.scalar(1);
  else {
    const bFloat = constant && constant.dtype !== 'float32' ? e.op('Cast', [b], { to: 1 }) : b;
    slope = e.mul(e.op('Pow', [a, e.op('Sub', [bFloat, e.scalar(1)])]), bFloat);
  }
  return [e.unbroadcast(e.mul(g, slope), ctx.dims(node.output[0]), a, node), undefined];
};

const sum: GradientRule = (ctx) => perOperand(ctx, (_, g) => g);

const expand: GradientRule = (ctx) => {
  const { node, e } = ctx;
  if (ctx.needs(1)) ctx.fail('the shape input cannot be differentiated');
  return [e.unbroadcast(outputGrad(ctx), ctx.dims(node.output[0]), node.input[0], node), undefined];
};

export const arithmeticRules: Record<string, GradientRule> = { Add: add, Sub: sub, Mul: mul, Div: div, Pow: pow, Sum: sum, Expand: expand };
