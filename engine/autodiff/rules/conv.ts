/**
 * Conv. The input gradient is the transposed convolution, written as ordinary Convs (ONNX
 * Runtime's Conv is about twice as fast as its ConvTranspose): for stride 1 a correlation
 * with the flipped kernel, for stride s its polyphase form; ConvTranspose covers the rest.
 * The weight gradient is itself a convolution: batch and channels swap places, so the input
 * (channels as batch) is convolved with the output gradient (batch as channels), strides and
 * dilations trading roles; groups stay groups.
 */
import { attrInt, attrInts } from '../../graph/attributes';
import { resolvePads } from '../../graph/shapes';
import { outputGrad, type GradientRule, type RuleContext } from './types';

interface ConvGeometry {
  spatial: number[];
  outSpatial: number[];
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  group: number;
  channelsIn: number;
  channelsOut: number;
}

function geometry(ctx: RuleContext): ConvGeometry {
  const { node, e } = ctx;
  const xDims = ctx.dims(node.input[0]);
  const w = e.staticDims(node.input[1], node, 'the Conv weight');
  const spatial = xDims.slice(2).map((d) => {
    if (typeof d !== 'number') ctx.fail(`spatial sizes must be static, got [${xDims.join(', ')}]`);
    return d;
  });
  const yDims = ctx.dims(node.output[0]);
  const outSpatial = yDims.slice(2) as number[];
  const n = spatial.length;
  const kernel = attrInts(node, 'kernel_shape') ?? w.slice(2);
  const strides = attrInts(node, 'strides') ?? new Array<number>(n).fill(1);
  const dilations = attrInts(node, 'dilations') ?? new Array<number>(n).fill(1);
  const pads = resolvePads(node, spatial, kernel, strides, dilations);
  const group = attrInt(node, 'group', 1);
  const channelsIn = xDims[1];
  if (typeof channelsIn !== 'number') ctx.fail('the input channel count must be static');
  return { spatial, outSpatial, kernel, strides, dilations, pads, group, channelsIn, channelsOut: w[0] };
}

/** The input gradient with ConvTranspose: general, but ONNX Runtime's CPU kernel is ~2× slower than its blocked Conv for wide layers. */
function inputGradientByConvTranspose(ctx: RuleContext, g: string, geo: ConvGeometry, weight: string): string {
  const { e, node } = ctx;
  const n = geo.spatial.length;
  const outputPadding = geo.spatial.map((s, i) => {
    const covered = (geo.outSpatial[i] - 1) * geo.strides[i] + (geo.kernel[i] - 1) * geo.dilations[i] + 1 - geo.pads[i] - geo.pads[i + n];
    return s - covered;
  });
  return e.op('ConvTranspose', [g, weight], {
    kernel_shape: geo.kernel,
    strides: geo.strides,
    dilations: geo.dilations,
    pads: geo.pads,
    group: geo.group,
    output_padding: outputPadding.some((p) => p !== 0) ? outputPadding : undefined,
  });
}

/** W [Cout, Cin/g, k…] as the weight of the transposed map: [Cin, Cout/g, k…], groups kept. */
function swappedChannels(ctx: RuleContext, geo: ConvGeometry, w: string): string {
  const { e } = ctx;
  const spatialAxes = geo.kernel.map((_, i) => i + 2);
  if (geo.group === 1) return e.op('Transpose', [w], { perm: [1, 0, ...spatialAxes] });
  const grouped = e.op('Reshape', [w, e.ints([geo.group, geo.channelsOut / geo.group, geo.channelsIn / geo.group, ...geo.kernel])]);
  const swapped = e.op('Transpose', [grouped], { perm: [0, 2, 1, ...spatialAxes.map((a) => a + 1)] });
  return e.op('Reshape', [swapped, e.ints([geo.channelsIn, geo.channelsOut / geo.group, ...geo.kernel])]);
}

/** Picks kernel taps along spatial axes (in the given, possibly reversed, order). */
function taps(ctx: RuleContext, w: string, perAxis: number[][]): string {
  let out = w;
  perAxis.forEach((indices, i) => {
    out = ctx.e.op('Gather', [out, ctx.e.ints(indices)], { axis: i + 2 });
  });
  return out;
}

/**
 * Stride 1: dx is the correlation of g with the flipped, channel-swapped kernel, padded by
 * (k−1)·d − pad on each side.
 */
function inputGradientStride1(ctx: RuleContext, g: string, geo: ConvGeometry, w: string): string {
  const { e } = ctx;
  const n = geo.spatial.length;
  const flipped = taps(ctx, swappedChannels(ctx, geo, w), geo.kernel.map((k) => Array.from({ length: k }, (_, j) => k - 1 - j)));
  const pads = [...geo.kernel.map((k, i) => (k - 1) * geo.dilations[i] - geo.pads[i]), ...geo.kernel.map((k, i) => (k - 1) * geo.dilations[i] - geo.pads[i + n])];
  return e.op('Conv', [g, flipped], { kernel_shape: geo.kernel, dilations: geo.dilations, pads, group: geo.group });
}

/**
 * Stride s > 1 (2-D, equal strides, no dilation), polyphase: input rows of phase φ = i mod s
 * only meet the taps k ≡ φ + pad (mod s), so each of the s² phases is a stride-1 Conv of g
 * with a sub-kernel; DepthToSpace interleaves the phases. Same FLOPs as the forward Conv.
 */
function inputGradientPolyphase(ctx: RuleContext, g: string, geo: ConvGeometry, w: string): string {
  const { e } = ctx;
  const s = geo.strides[0];
  const weight = swappedChannels(ctx, geo, w);
  const phaseRows = geo.spatial.map((size) => Math.ceil(size / s));
  const perAxis = geo.spatial.map((_, i) =>
    Array.from({ length: s }, (_, phase) => {
      const first = (phase + geo.pads[i]) % s;
      const picked: number[] = [];
      for (let k = first; k < geo.kernel[i]; k += s) picked.push(k);
      // g[m + c0 − j] meets tap first + j·s, c0 = (phase + pad − first) / s.
      const c0 = (phase + geo.pads[i] - first) / s;
      const before = picked.length - 1 - c0;
      const after = phaseRows[i] - geo.outSpatial[i] + c0;
      return { picked: picked.reverse(), before, after };
    }),
  );
  let zeros: string | undefined;
  const phases: string[] = [];
  for (const rowPhase of perAxis[0]) {
    for (const colPhase of perAxis[1]) {
      if (rowPhase.picked.length === 0 || colPhase.picked.length === 0) {
        zeros ??= e.op('ConstantOfShape', [e.op('Concat', [e.op('Slice', [e.shapeOf(g), e.ints([0]), e.ints([1])]), e.ints([geo.channelsIn, ...phaseRows])], { axis: 0 })], {
          value: { dtype: 'float32', dims: [1], data: new Float32Array(1) },
        });
        phases.push(zeros);
        continue;
      }
      const sides = [rowPhase, colPhase];
      // Conv pads cannot be negative: crop g instead where a phase starts or ends inside it.
      const crops = sides.map((p, i) => [Math.max(0, -p.before), geo.outSpatial[i] - Math.max(0, -p.after)]);
      const input = crops.some((c, i) => c[0] > 0 || c[1] < geo.outSpatial[i])
        ? e.op('Slice', [g, e.ints(crops.map((c) => c[0])), e.ints(crops.map((c) => c[1])), e.ints([2, 3])])
        : g;
      const kernel = sides.map((p) => p.picked.length);
      phases.push(
        e.op('Conv', [input, taps(ctx, weight, sides.map((p) => p.picked))], {
          kernel_shape: kernel,
          pads: [...sides.map((p) => Math.max(0, p.before)), ...sides.map((p) => Math.max(0, p.after))],
          group: geo.group,
        }),
      );
    }
  }
  const interleaved = e.op('DepthToSpace', [e.op('Concat', phases, { axis: 1 })], { blocksize: s, mode: 'DCR' });
  const exact = phaseRows.every((rows, i) => rows * s === geo.spatial[i]);
  return exact ? interleaved : e.op('Slice', [interleaved, e.ints([0, 0]), e.ints(geo.spatial), e.ints([2, 3])]);
}

function inputGradient(ctx: RuleContext, scaledG: string, geo: ConvGeometry): string {
  const { e, node } = ctx;
  const n = geo.spatial.length;
  // A per-output-channel factor on g (BN's gain) goes into the kernel: W[co]·k[co] is tiny
  // and constant-folded, g·k is a full-size pass.
  const scaled = e.channelScaled.get(scaledG);
  const g = scaled ? scaled.base : scaledG;
  const w = scaled ? e.mul(node.input[1], e.op('Reshape', [scaled.scale, e.ints([-1, ...geo.kernel.map(() => 1), 1])])) : node.input[1];
  const reachable = geo.kernel.every((k, i) => geo.pads[i] <= (k - 1) * geo.dilations[i] && geo.pads[i + n] <= (k - 1) * geo.dilations[i]);
  const stride1 = geo.strides.every((s) => s === 1) && reachable;
  // One input channel (a grey-scale image layer): each output channel's flipped kernel as a
  // depthwise Conv, which stays in ONNX Runtime's blocked layout, then the sum over channels.
  if (geo.group === 1 && geo.channelsIn === 1 && geo.channelsOut % 16 === 0 && stride1) {
    return e.reduceSum(inputGradientStride1(ctx, g, { ...geo, group: geo.channelsOut, channelsIn: geo.channelsOut, channelsOut: geo.channelsOut }, w), [1], true);
  }
  // Few input channels (an image layer): ONNX Runtime's blocked Conv pads the gradient's
  // channels to its block size, ConvTranspose does not and is then several times faster.
  if (geo.group === 1 && geo.channelsIn < 8) return inputGradientByConvTranspose(ctx, g, geo, w);
  if (stride1) return inputGradientStride1(ctx, g, geo, w);
  if (n === 2 && geo.strides[0] === geo.strides[1] && geo.dilations.every((d) => d === 1)) return inputGradientPolyphase(ctx, g, geo, w);
  return inputGradientByConvTranspose(ctx, g, geo, w);
}

function weightGradient(ctx: RuleContext, g: string, geo: ConvGeometry): string {
  const { e, node } = ctx;
  const x = node.input[0];
  const n = geo.spatial.length;
  const swap = [1, 0, ...geo.spatial.map((_, i) => i + 2)];
  const perGroup = geo.channelsIn / geo.group;
  // Input as [Cin/g, g·N, spatial]: the channels of group gi are the batch items gi·N … gi·N+N−1.
  const xAsBatch =
    geo.group === 1
      ? e.op('Transpose', [x], { perm: swap })
      : e.op('Reshape', [
          e.op('Transpose', [e.op('Reshape', [x, e.ints([0, geo.group, perGroup, ...geo.spatial])])], { perm: [2, 1, 0, ...geo.spatial.map((_, i) => i + 3)] }),
          e.ints([perGroup, -1, ...geo.spatial]),
        ]);
  const gAsWeight = e.op('Transpose', [g], { perm: swap });
  const full = e.op('Conv', [xAsBatch, gAsWeight], { strides: geo.dilations, dilations: geo.strides, pads: geo.pads, group: geo.group });
  const reach = geo.spatial.map((s, i) => Math.floor((s + geo.pads[i] + geo.pads[i + n] - (geo.outSpatial[i] - 1) * geo.strides[i] - 1) / geo.dilations[i]) + 1);
  const cropped = reach.some((r, i) => r !== geo.kernel[i])
    ? e.op('Slice', [full, e.ints(geo.kernel.map(() => 0)), e.ints(geo.kernel), e.ints(geo.kernel.map((_, i) => i + 2))])
    : full;
  return e.op('Transpose', [cropped], { perm: swap });
}

const conv: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const g = outputGrad(ctx);
  const geo = geometry(ctx);
  const out: (string | undefined)[] = node.input.map(() => undefined);
  if (ctx.needs(0)) out[0] = inputGradient(ctx, g, geo);
  if (ctx.needs(1)) out[1] = weightGradient(ctx, g, geo);
  if (node.input[2] && ctx.needs(2)) out[2] = e.reduceSum(g, [0, ...geo.spatial.map((_, i) => i + 2)], false);
  return out;
};

export const convRules: Record<string, GradientRule> = { Conv: conv };
