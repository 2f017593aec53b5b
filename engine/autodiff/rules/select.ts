/**
 * Ops that pick one of several values: Where, element-wise Max / Min (variadic, broadcasting).
 * Their outputs equal one input element, so the gradient goes to the element picked. Where's
 * condition is boolean and carries none. When several inputs of Max / Min attain the extremum
 * the gradient is shared equally among them: torch.maximum / torch.minimum give g/2 to each
 * side of a tie, and amax / amin over the inputs stacked share it among all tied ones (which
 * is the same rule for two inputs).
 */
import { outputGrad, type GradientRule, type RuleContext } from './types';

const where: GradientRule = (ctx) => {
  const { e, node } = ctx;
  if (ctx.needs(0)) ctx.fail('the condition cannot be differentiated');
  const [condition, whenTrue, whenFalse] = node.input;
  const g = outputGrad(ctx);
  const outDims = ctx.dims(node.output[0]);
  const zero = e.scalar(0);
  return [
    undefined,
    ctx.needs(1) ? e.unbroadcast(e.op('Where', [condition, g, zero]), outDims, whenTrue, node) : undefined,
    ctx.needs(2) ? e.unbroadcast(e.op('Where', [condition, zero, g]), outDims, whenFalse, node) : undefined,
  ];
};

function extremum(ctx: RuleContext, beats: 'Greater' | 'Less'): (string | undefined)[] {
  const { e, node } = ctx;
  const g = outputGrad(ctx);
  const outDims = ctx.dims(node.output[0]);
  const inputs = node.input;
  if (inputs.length === 1) return [g];
  let share: (i: number) => string;
  if (inputs.length === 2) {
    // Two inputs: 1 where this side wins, ½ on a tie, 0 where it loses.
    const tie = e.op('Equal', [inputs[0], inputs[1]]);
    share = (i) => e.op('Where', [tie, e.scalar(0.5), e.op('Cast', [e.op(beats, [inputs[i], inputs[1 - i]])], { to: 1 })]);
  } else {
    const y = node.output[0];
    const attains = inputs.map((x) => e.op('Cast', [e.op('Equal', [x, y])], { to: 1 }));
    const inverseCount = e.op('Reciprocal', [e.sum(attains)]);
    share = (i) => e.mul(attains[i], inverseCount);
  }
  return inputs.map((x, i) => (ctx.needs(i) ? e.unbroadcast(e.mul(g, share(i)), outDims, x, node) : undefined));
}

export const selectRules: Record<string, GradientRule> = {
  Where: where,
  Max: (ctx) => extremum(ctx, 'Greater'),
  Min: (ctx) => extremum(ctx, 'Less'),
};
