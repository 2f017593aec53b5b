/**
 * Turns stored images into model input: layout, channel count, size, scale, mean/std.
 * What the model needs is read from its input shape where that is unambiguous; the user's
 * spec (CLI flags or backdoor-lens.json) fills in or overrides the rest.
 */
import { badData, usageError } from '../errors';
import type { ValueSpec } from '../graph/model';
import { toFloat32 } from '../tensor';
import type { Dataset, Layout, PreprocessSpec, RawImages, ResolvedPreprocess } from './types';

export interface InputExpectation {
  layout: Layout;
  channels: number;
  height: number;
  width: number;
}

const channelCounts = new Set([1, 3, 4]);
/** Image classifiers take grey or RGB; 4 channels only count when nothing else fits. */
const likelyChannels = new Set([1, 3]);

/** Reads layout, channels and size from a model input like [N,1,28,28] or [N,224,224,3]. */
export function expectationFromInput(input: ValueSpec, spec: PreprocessSpec = {}): InputExpectation {
  const d = input.dims;
  const fail = (why: string) =>
    usageError(`cannot tell the input layout of '${input.name}' [${d.join(', ')}]: ${why}; give it with --layout NCHW|NHWC and --size HxW (or "preprocess" in backdoor-lens.json)`);
  if (d.length !== 4) {
    if (spec.layout && spec.channels && spec.height && spec.width) return { layout: spec.layout, channels: spec.channels, height: spec.height, width: spec.width };
    throw fail(`it has ${d.length} dimensions, image classifiers take 4`);
  }
  const num = (v: number | string | undefined) => (typeof v === 'number' ? v : undefined);
  let layout = spec.layout;
  if (!layout) {
    const c1 = num(d[1]), c3 = num(d[3]);
    const is = (set: Set<number>, v: number | undefined) => v !== undefined && set.has(v);
    if (is(likelyChannels, c1) && !is(likelyChannels, c3)) layout = 'NCHW';
    else if (is(likelyChannels, c3) && !is(likelyChannels, c1)) layout = 'NHWC';
    else if (is(likelyChannels, c1) && is(likelyChannels, c3)) layout = c1! <= c3! ? 'NCHW' : 'NHWC';
    else if (is(channelCounts, c1)) layout = 'NCHW';
    else if (is(channelCounts, c3)) layout = 'NHWC';
    else throw fail('neither dimension 1 nor dimension 3 is a channel count (1, 3 or 4)');
  }
  const [c, h, w] = layout === 'NCHW' ? [d[1], d[2], d[3]] : [d[3], d[1], d[2]];
  const channels = spec.channels ?? num(c), height = spec.height ?? num(h), width = spec.width ?? num(w);
  if (!channels || !height || !width) throw fail('its channel count or spatial size is symbolic');
  return { layout, channels, height, width };
}

/** The H×W of stored images without a model to compare with: [N,H,W], or the channel axis guessed as the loader does. */
export function storedImageSize(dims: readonly number[]): { height: number; width: number } | undefined {
  if (dims.length === 3) return { height: dims[1], width: dims[2] };
  if (dims.length !== 4) return undefined;
  const [, a, b, c] = dims;
  const channelsFirst = (likelyChannels.has(a) && !likelyChannels.has(c)) || (!likelyChannels.has(c) && channelCounts.has(a));
  return channelsFirst ? { height: b, width: c } : { height: a, width: b };
}

function storedLayout(dims: readonly number[], want: InputExpectation): 'NHW' | Layout {
  if (dims.length === 3) return 'NHW';
  const [, a, b, c] = dims;
  // The model's spatial size decides first; channel counts only when the size differs anyway.
  if (b === want.height && c === want.width && channelCounts.has(a)) return 'NCHW';
  if (a === want.height && b === want.width && channelCounts.has(c)) return 'NHWC';
  if (likelyChannels.has(c) && !likelyChannels.has(a)) return 'NHWC';
  if (likelyChannels.has(a) && !likelyChannels.has(c)) return 'NCHW';
  if (channelCounts.has(a)) return 'NCHW';
  return 'NHWC';
}

/** Bilinear resize, half-pixel centres (as PIL and torchvision do without antialiasing). */
function resizePlane(src: Float32Array, sh: number, sw: number, dh: number, dw: number): Float32Array {
  const out = new Float32Array(dh * dw);
  const sy = sh / dh, sx = sw / dw;
  for (let y = 0; y < dh; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), sh - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, sh - 1), wy = fy - y0;
    for (let x = 0; x < dw; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), sw - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, sw - 1), wx = fx - x0;
      const top = src[y0 * sw + x0] * (1 - wx) + src[y0 * sw + x1] * wx;
      const bottom = src[y1 * sw + x0] * (1 - wx) + src[y1 * sw + x1] * wx;
      out[y * dw + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

export function preprocess(raw: RawImages, want: InputExpectation, spec: PreprocessSpec = {}): Dataset {
  const dims = raw.pixels.dims;
  const sourceLayout = storedLayout(dims, want);
  const n = dims[0];
  const [sc, sh, sw] = sourceLayout === 'NHW' ? [1, dims[1], dims[2]] : sourceLayout === 'NCHW' ? [dims[1], dims[2], dims[3]] : [dims[3], dims[1], dims[2]];
  if (!channelCounts.has(sc)) throw badData(raw.source, `images have ${sc} channels; expected 1, 3 or 4`);
  if ((sh !== want.height || sw !== want.width) && !spec.resize) {
    throw badData(raw.source, `images are ${sh}×${sw} but the model expects ${want.height}×${want.width}; pass --resize (or "preprocess": {"resize": true}) to resize them`);
  }
  const integer = !['float32', 'float64', 'float16', 'bfloat16'].includes(raw.pixels.dtype);
  const scale = spec.scale ?? (integer ? 1 / 255 : 1);
  const C = want.channels;
  const mean = spec.mean ?? new Array<number>(C).fill(0);
  const std = spec.std ?? new Array<number>(C).fill(1);
  if (mean.length !== C && mean.length !== 1) throw usageError(`mean has ${mean.length} values but the model takes ${C} channels`);
  if (std.length !== C && std.length !== 1) throw usageError(`std has ${std.length} values but the model takes ${C} channels`);
  if (std.some((s) => s === 0)) throw usageError('std must not contain 0');
  const meanAt = (c: number) => (mean.length === 1 ? mean[0] : mean[c]);
  const stdAt = (c: number) => (std.length === 1 ? std[0] : std[c]);
  const src = toFloat32(raw.pixels).data;
  const H = want.height, W = want.width, hw = H * W, shw = sh * sw;
  const x = new Float32Array(n * C * hw);
  const plane = new Float32Array(shw);
  const at = (s: number, c: number, p: number) =>
    sourceLayout === 'NHW' ? src[s * shw + p] : sourceLayout === 'NCHW' ? src[(s * sc + c) * shw + p] : src[(s * shw + p) * sc + c];
  for (let s = 0; s < n; s++) {
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < shw; p++) {
        let v: number;
        if (sc === C || (sc === 4 && C === 3)) v = at(s, c, p);
        else if (sc === 1) v = at(s, 0, p);
        else if (C === 1) v = 0.299 * at(s, 0, p) + 0.587 * at(s, 1, p) + 0.114 * at(s, 2, p); // ITU-R 601 luma, as PIL's convert('L')
        else throw badData(raw.source, `cannot convert ${sc}-channel images to the model's ${C} channels`);
        plane[p] = v;
      }
      const resized = sh === H && sw === W ? plane : resizePlane(plane, sh, sw, H, W);
      const m = meanAt(c), sd = stdAt(c);
      for (let p = 0; p < hw; p++) {
        const v = (resized[p] * scale - m) / sd;
        if (want.layout === 'NCHW') x[(s * C + c) * hw + p] = v;
        else x[(s * hw + p) * C + c] = v;
      }
    }
  }
  return {
    source: raw.source,
    n,
    x,
    dims: want.layout === 'NCHW' ? [n, C, H, W] : [n, H, W, C],
    labels: raw.labels,
    poisoned: raw.poisoned,
    preprocess: {
      layout: want.layout, channels: C, height: H, width: W, scale,
      mean: Array.from({ length: C }, (_, c) => meanAt(c)),
      std: Array.from({ length: C }, (_, c) => stdAt(c)),
      resized: sh !== H || sw !== W,
      sourceLayout,
    },
  };
}
