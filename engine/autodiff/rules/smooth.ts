/**
 * Smooth and exponential-linear activations: Softplus, Elu, Selu, Celu, Softsign, Erf, Gelu
 * (opset 20; exact erf form and tanh approximation), Mish (opset 18), and Abs. Derivatives follow PyTorch's
 * backward formulas, including at 0: the ELU family takes its negative branch there (as
 * torch's elu_backward does for x ≤ 0), and |x|' = sign(x) is 0 at 0.
 */
import { attrFloat, attrString } from '../../graph/attributes';
import { outputGrad, type GradientRule, type RuleContext } from './types';

/** softplus(x) = ln(1 + eˣ): the derivative is the logistic sigmoid. */
const softplus: GradientRule = (ctx) => [ctx.e.mul(outputGrad(ctx), ctx.e.op('Sigmoid', [ctx.node.input[0]]))];

/**
 * y = scale·x for x > 0, otherwise y = scale·α·(exp(x/inputScale) − 1) (Elu: scale 1,
 * inputScale 1; Selu: γ and 1; Celu: 1 and α). On the negative side dy/dx = (y + scale·α)/inputScale,
 * read from the output.
 */
function exponentialLinear(ctx: RuleContext, alpha: number, scale: number, inputScale: number): (string | undefined)[] {
  const { e, node } = ctx;
  const g = outputGrad(ctx);
  const [x] = node.input;
  const y = node.output[0];
  let negative = e.op('Add', [y, e.scalar(scale * alpha)]);
  if (inputScale !== 1) negative = e.mul(negative, e.scalar(1 / inputScale));
  const positive = scale === 1 ? g : e.mul(g, e.scalar(scale));
  return [e.op('Where', [e.op('Greater', [x, e.scalar(0)]), positive, e.mul(g, negative)])];
}

const elu: GradientRule = (ctx) => exponentialLinear(ctx, attrFloat(ctx.node, 'alpha', 1), 1, 1);

const selu: GradientRule = (ctx) => exponentialLinear(ctx, attrFloat(ctx.node, 'alpha', 1.67326319217681884765625), attrFloat(ctx.node, 'gamma', 1.05070102214813232421875), 1);

const celu: GradientRule = (ctx) => {
  const alpha = attrFloat(ctx.node, 'alpha', 1);
  return exponentialLinear(ctx, alpha, 1, alpha);
};

/** softsign(x) = x / (1 + |x|): the derivative is 1 / (1 + |x|)². */
const softsign: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const denominator = e.op('Add', [e.op('Abs', [node.input[0]]), e.scalar(1)]);
  return [e.op('Div', [outputGrad(ctx), e.mul(denominator, denominator)])];
};

/** erf'(x) = 2/√π · exp(−x²). */
const erf: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const x = node.input[0];
  const density = e.op('Exp', [e.op('Neg', [e.mul(x, x)])]);
  return [e.mul(outputGrad(ctx), e.mul(density, e.scalar(2 / Math.sqrt(Math.PI))))];
};

/**
 * gelu(x) = x·Φ(x): dy/dx = Φ(x) + x·φ(x), Φ(x) = ½(1 + erf(x/√2)), φ(x) = exp(−x²/2)/√(2π).
 * With approximate = 'tanh', y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³):
 * dy/dx = ½(1 + tanh u) + ½x(1 − tanh² u)·√(2/π)(1 + 3·0.044715x²).
 */
const gelu: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const x = node.input[0];
  const g = outputGrad(ctx);
  const approximate = attrString(node, 'approximate', 'none');
  const squared = e.mul(x, x);
  if (approximate === 'tanh') {
    const k = Math.sqrt(2 / Math.PI), c = 0.044715;
    const u = e.mul(e.mul(x, e.op('Add', [e.mul(squared, e.scalar(c)), e.scalar(1)])), e.scalar(k));
    const t = e.op('Tanh', [u]);
    const du = e.op('Add', [e.mul(squared, e.scalar(3 * c * k)), e.scalar(k)]);
    const outer = e.mul(e.op('Add', [t, e.scalar(1)]), e.scalar(0.5));
    const inner = e.mul(e.mul(e.mul(x, e.scalar(0.5)), e.op('Sub', [e.scalar(1), e.mul(t, t)])), du);
    return [e.mul(g, e.op('Add', [outer, inner]))];
  }
  if (approximate !== 'none') ctx.fail(`Gelu approximate='${approximate}' is not supported (only 'none' and 'tanh')`);
  const cdf = e.mul(e.op('Add', [e.op('Erf', [e.mul(x, e.scalar(Math.SQRT1_2))]), e.scalar(1)]), e.scalar(0.5));
  const density = e.mul(e.op('Exp', [e.mul(squared, e.scalar(-0.5))]), e.scalar(1 / Math.sqrt(2 * Math.PI)));
  return [e.mul(g, e.op('Add', [cdf, e.mul(x, density)]))];
};

/** mish(x) = x·tanh(s), s = softplus(x): dy/dx = tanh(s) + x·sigmoid(x)·(1 − tanh² s). */
const mish: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const x = node.input[0];
  const t = e.op('Tanh', [e.op('Softplus', [x])]);
  const slope = e.op('Add', [t, e.mul(e.mul(x, e.op('Sigmoid', [x])), e.op('Sub', [e.scalar(1), e.mul(t, t)]))]);
  return [e.mul(outputGrad(ctx), slope)];
};

const abs: GradientRule = (ctx) => [ctx.e.mul(outputGrad(ctx), ctx.e.op('Sign', [ctx.node.input[0]]))];

export const smoothRules: Record<string, GradientRule> = {
  Softplus: softplus,
  Elu: elu,
  Selu: selu,
  Celu: celu,
  Softsign: softsign,
  Erf: erf,
  Gelu: gelu,
  Mish: mish,
  Abs: abs,
};
