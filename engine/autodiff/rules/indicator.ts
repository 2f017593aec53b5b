/**
 * Exact 0/1 masks on [N, C, …] float tensors, written with per-channel affine maps and
 * activations that ONNX Runtime keeps in its blocked (NCHWc) layout.
 *
 * Greater / Less → Cast → Mul read plain NCHW tensors, so next to convolutions ONNX Runtime
 * reorders every compared tensor out of the blocked layout and the masked gradient back in.
 * A depthwise Conv (or a BatchNormalization with mean 0, variance 1 and ε 0) is a per-channel
 * affine map that ONNX Runtime runs in the blocked layout, with a following activation and a
 * following Add fused into the same pass; two blocked tensors also multiply in place. For every
 * finite float32 v ≥ 0
 *   [v > 0] = clip(2^127·(2^23·v), 0, 1)  (a Conv scaling by 2^23, then HardSigmoid α = 2^127),
 * exactly: both scalings are powers of two, and the smallest positive float32, 2^−149, reaches
 * 2 (an overflow to +∞ clips to 1). A difference y − t of two finite floats rounds to 0 only
 * when y = t (gradual underflow), so [t < y] for t ≤ y is [y − t > 0] with y − t taken in the
 * same pass as t.
 */
import type { Dim } from '../../graph/model';
import type { Emitter } from '../emitter';

/** x·scale + bias per channel (bias one number or one per channel), as a BatchNormalization over axis 1. */
export function affine(e: Emitter, x: string, channels: number, scale: number, bias: number | number[]): string {
  const perChannel = (v: number | number[]) => e.floats(Array.isArray(v) ? v : new Array<number>(channels).fill(v), [channels]);
  return e.op('BatchNormalization', [x, perChannel(scale), perChannel(bias), perChannel(0), perChannel(1)], { epsilon: 0 });
}

/**
 * [v > 0] as 0/1 floats, for v ≥ 0, in one pass: a depthwise 1×1 Conv scaling by 2^23 and a
 * HardSigmoid, which ONNX Runtime fuses (a BatchNormalization would become a Conv only after
 * that fusion pass has run).
 */
export function isPositive(e: Emitter, v: string, channels: number): string {
  const scaled = e.op('Conv', [v, e.floats(new Array<number>(channels).fill(2 ** 23), [channels, 1, 1, 1])], { group: channels, kernel_shape: [1, 1] });
  return e.op('HardSigmoid', [scaled], { alpha: 2 ** 127, beta: 0 });
}

/**
 * [v > 0] for v ≥ 0 of shape `dims`: in one blocked-layout pass on [N, C, H, W] feature maps
 * (isPositive's 1×1 Conv is two-dimensional), as Greater → Cast elsewhere.
 */
export function positiveMask(e: Emitter, v: string, dims: readonly Dim[]): string {
  const channels = dims[1];
  if (dims.length === 4 && typeof channels === 'number') return isPositive(e, v, channels);
  return e.op('Cast', [e.op('Greater', [v, e.scalar(0)])], { to: 1 });
}

/**
 * [x[k·i + row, k·j + col] < y[i, j]] for y ≥ x on a stride-k grid (y a k×k max pool of x):
 * y − x[…] as a depthwise Conv whose kernel has one non-zero tap (−1) with y added in the same
 * pass, then isPositive.
 */
export function isBelowOnGrid(e: Emitter, x: string, y: string, channels: number, stride: number, row: number, col: number): string {
  const taps = (row + 1) * (col + 1);
  const kernel = new Array<number>(channels * taps).fill(0);
  for (let c = 0; c < channels; c++) kernel[c * taps + taps - 1] = -1;
  const picked = e.op('Conv', [x, e.floats(kernel, [channels, 1, row + 1, col + 1])], { group: channels, kernel_shape: [row + 1, col + 1], strides: [stride, stride] });
  return isPositive(e, e.op('Add', [picked, y]), channels);
}
