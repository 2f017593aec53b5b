/**
 * BatchNormalization in inference mode: y = scale·(x − mean)/√(var + ε) + B, per channel
 * (axis 1). All five inputs are differentiable, so ANP-style masks on scale and bias and
 * promoted running statistics get their gradients too.
 * LayerNormalization (opset 17): statistics over the axes from `axis` on, of each sample.
 */
import { attrFloat, attrInt } from '../../graph/attributes';
import { normalizeAxis, outputGrad, type GradientRule } from './types';

const batchNormalization: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const g = outputGrad(ctx);
  const [x, scale, , mean, variance] = node.input;
  const rank = ctx.dims(x).length;
  if (rank < 2) ctx.fail('the input must have a channel axis');
  const channelShape = e.ints([1, -1, ...new Array<number>(rank - 2).fill(1)]);
  const perChannel = (v: string) => e.op('Reshape', [v, channelShape]);
  const reduceAxes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
  const invStd = e.op('Reciprocal', [e.op('Sqrt', [e.op('Add', [variance, e.scalar(attrFloat(node, 'epsilon', 1e-5))])])]);
  const gain = e.mul(scale, invStd);
  const out: (string | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
  if (ctx.needs(0)) {
    out[0] = e.mul(g, perChannel(gain));
    e.channelScaled.set(out[0], { base: g, scale: gain });
  }
  let sumG: string | undefined;
  const sumOfG = () => (sumG ??= e.reduceSum(g, reduceAxes, false));
  let sumGXhat: string | undefined;
  const sumOfGXhat = () => (sumGXhat ??= e.reduceSum(e.mul(g, e.mul(e.op('Sub', [x, perChannel(mean)]), perChannel(invStd))), reduceAxes, false));
  if (ctx.needs(1)) out[1] = sumOfGXhat();
  if (ctx.needs(2)) out[2] = sumOfG();
  if (ctx.needs(3)) out[3] = e.op('Neg', [e.mul(sumOfG(), gain)]);
  if (ctx.needs(4)) out[4] = e.mul(sumOfGXhat(), e.mul(e.mul(scale, e.mul(invStd, invStd)), e.scalar(-0.5)));
  return out;
};

/**
 * y = x̂·scale + B, x̂ = (x − μ)·r, r = 1/√(σ² + ε) over the normalised axes A. With
 * d = g·scale: dx = r·(d − mean_A(d) − x̂·mean_A(d·x̂)); dscale = Σ g·x̂ and dB = Σ g over the
 * axes the parameters are broadcast along. μ and r are the node's optional Mean and
 * InvStdDev outputs, asked for when the export did not use them.
 */
const layerNormalization: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const g = outputGrad(ctx);
  const [x, scale, bias] = node.input;
  const dims = ctx.dims(x);
  const axis = normalizeAxis(attrInt(node, 'axis', -1), dims.length);
  const axes = Array.from({ length: dims.length - axis }, (_, i) => axis + i);
  if (attrInt(node, 'stash_type', 1) !== 1) ctx.fail('only stash_type 1 (float32 statistics) is supported');
  for (const k of [1, 2]) if (!node.output[k]) node.output[k] = e.fresh(`${node.output[0]}_${k === 1 ? 'mean' : 'inv_std_dev'}`);
  const [, mean, invStd] = node.output;
  const normalized = e.mul(e.op('Sub', [x, mean]), invStd);
  const outDims = ctx.dims(node.output[0]);
  const out: (string | undefined)[] = node.input.map(() => undefined);
  if (ctx.needs(0)) {
    const d = e.mul(g, scale);
    const meanOf = (t: string) => e.op('ReduceMean', [t, e.ints(axes)], { keepdims: 1 });
    const centred = e.op('Sub', [d, meanOf(d)]);
    out[0] = e.mul(e.op('Sub', [centred, e.mul(normalized, meanOf(e.mul(d, normalized)))]), invStd);
  }
  if (ctx.needs(1)) out[1] = e.unbroadcast(e.mul(g, normalized), outDims, scale, node);
  if (bias && ctx.needs(2)) out[2] = e.unbroadcast(g, outDims, bias, node);
  return out;
};

export const normalizationRules: Record<string, GradientRule> = { BatchNormalization: batchNormalization, LayerNormalization: layerNormalization };
