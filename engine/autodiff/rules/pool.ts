/**
 * Pooling. MaxPool routes each output's gradient to the input element its window picked (the
 * first maximum in scan order on ties, as PyTorch): for 2×2 / stride-2 pools that position is
 * worked out from three window elements read with depthwise Convs (see routeTiled2x2);
 * otherwise it is read from the Indices output the forward MaxPool is asked to produce.
 * Windows that cannot overlap scatter with MaxUnpool, overlapping ones add with ScatterElements
 * (reduction 'add'). GlobalMaxPool routes to each plane's first maximum. AveragePool spreads
 * g/divisor over each window with a depthwise ConvTranspose of ones (or an Expand when windows
 * tile the input exactly); the divisor map follows ONNX Runtime's forward rule (padding counted
 * up to the padded extent when count_include_pad, real elements only otherwise; ceil_mode
 * windows clipped); GlobalAveragePool spreads g evenly.
 */
import { attrInt, attrInts } from '../../graph/attributes';
import type { Dim } from '../../graph/model';
import { resolvePads } from '../../graph/shapes';
import { sizeOf } from '../../tensor';
import { affine, isBelowOnGrid, positiveMask } from './indicator';
import { outputGrad, type GradientRule, type RuleContext } from './types';

interface PoolGeometry {
  spatial: number[];
  outSpatial: number[];
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
}

function geometry(ctx: RuleContext): PoolGeometry {
  const { node } = ctx;
  const xDims = ctx.dims(node.input[0]);
  const spatial = xDims.slice(2).map((d) => {
    if (typeof d !== 'number') ctx.fail(`spatial sizes must be static, got [${xDims.join(', ')}]`);
    return d;
  });
  const n = spatial.length;
  const kernel = attrInts(node, 'kernel_shape');
  if (!kernel) ctx.fail('kernel_shape is missing');
  const strides = attrInts(node, 'strides') ?? new Array<number>(n).fill(1);
  const dilations = attrInts(node, 'dilations') ?? new Array<number>(n).fill(1);
  const pads = resolvePads(node, spatial, kernel, strides, dilations);
  const outSpatial = ctx.dims(node.output[0]).slice(2) as number[];
  return { spatial, outSpatial, kernel, strides, dilations, pads };
}

const maxPool: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const geo = geometry(ctx);
  const channels = ctx.dims(node.input[0])[1];
  if (!node.output[1] && typeof channels === 'number' && tiles2x2(geo, channels)) return [routeTiled2x2(ctx, reluMaskedOnPooled(ctx), geo, channels)];
  const g = reluMaskedOnPooled(ctx);
  if (!node.output[1]) {
    node.output[1] = e.fresh(`${node.output[0]}_indices`);
    node.attribute = node.attribute.filter((a) => a.name !== 'storage_order');
  } else if (attrInt(node, 'storage_order', 0) !== 0) {
    ctx.fail('column-major (storage_order 1) indices are not supported');
  }
  const indices = node.output[1];
  const x = node.input[0];
  const overlapping = geo.kernel.some((k, i) => (k - 1) * geo.dilations[i] + 1 > geo.strides[i]);
  if (!overlapping && geo.outSpatial.every((o, i) => o <= geo.spatial[i])) {
    // Each input element is in at most one window: a plain scatter. MaxUnpool's own attributes
    // only bound the output size from below; unit windows keep that bound (the pooled size) valid.
    const unit = geo.kernel.map(() => 1);
    return [e.op('MaxUnpool', [g, indices, e.shapeOf(x)], { kernel_shape: unit, strides: unit })];
  }
  const flat = e.ints([1, -1]);
  const zeros = e.op('Reshape', [e.zerosLike(x), flat]);
  const scattered = e.op('ScatterElements', [zeros, e.op('Reshape', [indices, flat]), e.op('Reshape', [g, flat])], { axis: 1, reduction: 'add' });
  return [e.reshapeLike(scattered, x)];
};

/**
 * 2×2 windows at stride 2 without padding or dilation that tile the input exactly (the usual
 * CNN pool), on feature maps small enough (C·H·W ≤ 2^24) for exact float offsets.
 */
function tiles2x2(geo: PoolGeometry, channels: number): boolean {
  return (
    geo.spatial.length === 2 &&
    geo.kernel.every((k) => k === 2) &&
    geo.strides.every((s) => s === 2) &&
    geo.dilations.every((d) => d === 1) &&
    geo.pads.every((p) => p === 0) &&
    geo.outSpatial.every((o, i) => o * 2 === geo.spatial[i]) &&
    channels * geo.spatial[0] * geo.spatial[1] <= 2 ** 24
  );
}

/**
 * Routes g to each 2×2 window's first maximum without MaxPool's Indices output, which ONNX
 * Runtime computes in a slow generic loop outside its blocked (NCHWc) layout. In PyTorch's scan
 * order the window holds a = x[2i,2j], b = x[2i,2j+1], c = x[2i+1,2j], d = x[2i+1,2j+1]; with
 * y its maximum and n_t = [t < y], the first maximum lies
 *   n_a·(1 + n_b·(W − 1 + n_c))
 * after the window's top-left element (0 at a, 1 at b, W at c, W + 1 at d). The tests n_t are
 * exact masks (indicator.ts) on y minus the element, read with depthwise Convs that pick one
 * element per window, so everything stays in the blocked layout; the offset, plus the channel
 * plane's start, is reordered to NCHW once, the batch's and the window's starts are added as
 * integers, and MaxUnpool scatters g to those flat indices.
 */
function routeTiled2x2(ctx: RuleContext, g: string, geo: PoolGeometry, channels: number): string {
  const { e, node } = ctx;
  const x = node.input[0];
  const y = node.output[0];
  const [height, width] = geo.spatial;
  const [rows, cols] = geo.outSpatial;
  const [na, nb, nc] = [[0, 0], [0, 1], [1, 0]].map(([row, col]) => isBelowOnGrid(e, x, y, channels, 2, row, col));
  const beyondA = e.mul(na, e.mul(nb, affine(e, nc, channels, 1, width - 1)));
  const planeSize = height * width;
  // The affine map and the Add run as one pass.
  const offset = e.op('Add', [affine(e, na, channels, 1, Array.from({ length: channels }, (_, c) => c * planeSize)), beyondA]);
  // Batch and window starts: [N, 1, rows, cols], small next to the [N, C, rows, cols] offsets.
  // The sum is taken in int32 (onnxruntime casts float → int32 → int64 in about half the time of
  // float → int64); flat indices fit while the feature map holds fewer than 2^31 elements (8 GiB).
  const featureSize = channels * planeSize;
  const batchStarts = e.op('Range', [e.ints0(0), e.op('ReduceProd', [e.shapeOf(x)], { keepdims: 0 }), e.ints0(featureSize)]);
  const corners = e.builder.initializer('window_corners', { dtype: 'int64', dims: [rows, cols], data: BigInt64Array.from({ length: rows * cols }, (_, k) => BigInt(2 * Math.floor(k / cols) * width + 2 * (k % cols))) });
  const starts = e.op('Cast', [e.op('Add', [e.op('Reshape', [batchStarts, e.ints([-1, 1, 1, 1])]), corners])], { to: 6 });
  const index = e.op('Cast', [e.op('Add', [e.op('Cast', [offset], { to: 6 }), starts])], { to: 7 });
  const unit = [1, 1];
  return e.op('MaxUnpool', [g, index, e.shapeOf(x)], { kernel_shape: unit, strides: unit });
}

/**
 * Relu → MaxPool: the routed gradient lands on the window's maximum, whose Relu output is the
 * pooled value, so relu'(x) there is [pooled > 0] and the mask can be applied to the pooled
 * gradient (a quarter of the size for 2×2 pools) instead of the Relu's own.
 */
function reluMaskedOnPooled(ctx: RuleContext): string {
  const { e, node } = ctx;
  const g = outputGrad(ctx);
  const relu = ctx.producer(node.input[0]);
  if (!relu || relu.op_type !== 'Relu' || !ctx.usedOnlyHere(node.input[0]) || !ctx.needs(0)) return g;
  ctx.absorb(relu);
  const pooled = node.output[0];
  return e.mul(g, positiveMask(e, pooled, ctx.dims(pooled)));
}

/** Per-dimension window sizes counted by the divisor, multiplied over dimensions. */
function divisorMap(geo: PoolGeometry, includePad: boolean): Float32Array {
  const n = geo.spatial.length;
  const perDim = geo.spatial.map((size, i) =>
    Array.from({ length: geo.outSpatial[i] }, (_, o) => {
      const start = o * geo.strides[i] - geo.pads[i];
      const end = start + geo.kernel[i];
      const lo = includePad ? -geo.pads[i] : 0;
      const hi = includePad ? size + geo.pads[i + n] : size;
      return Math.min(end, hi) - Math.max(start, lo);
    }),
  );
  const total = sizeOf(geo.outSpatial);
  const out = new Float32Array(total);
  for (let flat = 0; flat < total; flat++) {
    let rest = flat, d = 1;
    for (let i = n - 1; i >= 0; i--) {
      d *= perDim[i][rest % geo.outSpatial[i]];
      rest = Math.floor(rest / geo.outSpatial[i]);
    }
    out[flat] = 1 / d;
  }
  return out;
}

const averagePool: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const g = outputGrad(ctx);
  const geo = geometry(ctx);
  if (geo.dilations.some((d) => d !== 1)) ctx.fail('dilated AveragePool is not supported');
  const n = geo.spatial.length;
  const channels = ctx.dims(node.input[0])[1];
  if (typeof channels !== 'number') return ctx.fail('the channel count must be static');
  const inverse = divisorMap(geo, attrInt(node, 'count_include_pad', 0) === 1);
  const uniform = inverse.every((v) => v === inverse[0]);
  const scaled = e.mul(g, uniform ? e.scalar(inverse[0]) : e.floats(Array.from(inverse), [1, 1, ...geo.outSpatial]));
  const tiles = geo.kernel.every((k, i) => k === geo.strides[i] && geo.pads[i] === 0 && geo.pads[i + n] === 0 && geo.outSpatial[i] * k === geo.spatial[i]);
  if (tiles) {
    // Each output owns a k×k block: repeat it over the block.
    const split = e.op('Reshape', [scaled, e.ints([0, 0, ...geo.outSpatial.flatMap((o) => [o, 1])])]);
    const repeated = e.op('Expand', [split, e.ints([1, 1, ...geo.kernel.flatMap((k) => [1, k])])]);
    return [e.op('Reshape', [repeated, e.ints([0, 0, ...geo.spatial])])];
  }
  const ones = e.floats(new Array<number>(channels * sizeOf(geo.kernel)).fill(1), [channels, 1, ...geo.kernel]);
  const pads: number[] = new Array<number>(2 * n).fill(0);
  const outputPadding: number[] = [];
  geo.spatial.forEach((s, i) => {
    // The full transposed output spans (out−1)·stride + kernel from −pad_begin; keep [0, s).
    const reach = (geo.outSpatial[i] - 1) * geo.strides[i] + geo.kernel[i] - geo.pads[i];
    pads[i] = geo.pads[i];
    pads[i + n] = Math.max(0, reach - s);
    outputPadding.push(Math.max(0, s - reach));
  });
  return [
    e.op('ConvTranspose', [scaled, ones], {
      kernel_shape: geo.kernel,
      strides: geo.strides,
      pads,
      group: channels,
      output_padding: outputPadding.some((p) => p !== 0) ? outputPadding : undefined,
    }),
  ];
};

const globalAveragePool: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const x = node.input[0];
  const spatial: Dim[] = ctx.dims(x).slice(2);
  if (spatial.some((d) => typeof d !== 'number')) ctx.fail('spatial sizes must be static');
  const count = sizeOf(spatial as number[]);
  return [e.op('Expand', [e.mul(outputGrad(ctx), e.scalar(1 / count)), e.shapeOf(x)])];
};

/**
 * GlobalMaxPool routes g to the first maximum of each channel plane in scan order, as
 * PyTorch's adaptive_max_pool2d (output size 1) does; ArgMax picks the first maximum too.
 */
const globalMaxPool: GradientRule = (ctx) => {
  const { e, node } = ctx;
  const x = node.input[0];
  const spatial = ctx.dims(x).slice(2);
  if (spatial.some((d) => typeof d !== 'number')) ctx.fail('spatial sizes must be static');
  const planeSize = sizeOf(spatial as number[]);
  const planes = e.op('Reshape', [x, e.ints([0, 0, -1])]);
  const first = e.op('ArgMax', [planes], { axis: 2, keepdims: 1, select_last_index: 0 });
  const positions = e.builder.initializer('plane_positions', { dtype: 'int64', dims: [planeSize], data: BigInt64Array.from({ length: planeSize }, (_, i) => BigInt(i)) });
  const picked = e.op('Cast', [e.op('Equal', [first, positions])], { to: 1 });
  const routed = e.mul(picked, e.op('Reshape', [outputGrad(ctx), e.ints([0, 0, 1])]));
  return [e.reshapeLike(routed, x)];
};

export const poolRules: Record<string, GradientRule> = { MaxPool: maxPool, AveragePool: averagePool, GlobalAveragePool: globalAveragePool, GlobalMaxPool: globalMaxPool };
