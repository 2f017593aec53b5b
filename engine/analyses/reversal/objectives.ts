/**
 * The two trigger parameterisations reversal optimises, as plain functions of one sample's worth
 * of values: compose the triggered input from a clean one, and chain ∂L/∂x' back to the trigger's
 * parameters. The network's gradient ∂L/∂x' comes from the gradient session; everything here is
 * cheap elementwise work in JS.
 *
 *  patch (Neural Cleanse): m = (tanh a + 1)/2 per pixel, P = lo + (hi − lo)·(tanh b + 1)/2 per value,
 *    x' = (1 − m)·x + m·P; norm |m|₁; statistic 1/|m|₁.
 *  perturbation (Xiang et al.): x' = clamp(x + v, lo, hi); norm ‖v‖₂; statistic 1/‖v‖₂.
 *  warp: x' = x resampled bilinearly at p + d(p), where the displacement d (pixels) is a G×G grid
 *    of control vectors upsampled bilinearly to the image; norm ‖d‖₂ over the pixels; statistic
 *    1/‖d‖₂. A patch or an additive pattern cannot express a warping trigger (WaNet): its effect
 *    on each image depends on that image's edges. The control grid keeps the field smooth, so a
 *    small field cannot hide an adversarial per-pixel perturbation.
 */
import type { ReversedTrigger } from './trigger';

export type ObjectiveKind = 'patch' | 'perturbation' | 'warp';

/** Where each value of one sample sits: its channel and its pixel (layout-aware). */
export interface SampleGeometry {
  channels: number;
  height: number;
  width: number;
  layout: 'NCHW' | 'NHWC';
  range: { min: number[]; max: number[] };
}

export const sampleValues = (g: SampleGeometry) => g.channels * g.height * g.width;

export function channelIndex(g: SampleGeometry): Int32Array {
  const n = sampleValues(g), hw = g.height * g.width;
  return Int32Array.from({ length: n }, (_, j) => (g.layout === 'NCHW' ? Math.floor(j / hw) : j % g.channels));
}

export function pixelIndex(g: SampleGeometry): Int32Array {
  const n = sampleValues(g), hw = g.height * g.width;
  return Int32Array.from({ length: n }, (_, j) => (g.layout === 'NCHW' ? j % hw : Math.floor(j / g.channels)));
}

/** A trigger under optimisation: its raw parameters and how they map to images. */
export interface Objective {
  readonly kind: ObjectiveKind;
  /** Raw parameters Adam updates. */
  readonly params: Float64Array;
  /** Recomputes cached values after `params` changed. */
  refresh(): void;
  /** Writes the triggered version of `x` (one sample) into `out`. */
  compose(x: Float32Array, xOffset: number, out: Float32Array, outOffset: number): void;
  /** Adds ∂L/∂params for one sample, given ∂L/∂x' (`dx`) and the clean sample `x`. */
  backward(x: Float32Array, xOffset: number, dx: Float32Array, dxOffset: number, grad: Float64Array): void;
  /** The trigger's size: |m|₁ (patch), ‖v‖₂ (perturbation) or ‖d‖₂ (warp, pixels). */
  norm(): number;
  /** Adds λ·∂R/∂params of the size penalty R (|m|₁, ‖v‖₂² or ‖d‖₂²) to `grad`. */
  addPenaltyGradient(lambda: number, grad: Float64Array): void;
  /** The trigger in the hand-off form. */
  toTrigger(target: number, sources: number[], params?: Float64Array): ReversedTrigger;
}

const ATANH_LIMIT = 1 - 1e-6;
const atanhOfUnit = (u: number) => Math.atanh(Math.min(Math.max(2 * u - 1, -ATANH_LIMIT), ATANH_LIMIT));

export class PatchObjective implements Objective {
  readonly kind = 'patch' as const;
  readonly params: Float64Array;
  private readonly hw: number;
  private readonly n: number;
  private readonly channel: Int32Array;
  private readonly pixel: Int32Array;
  /** Cached m, P and the tanh derivatives for the current params (recomputed in refresh()). */
  private mask: Float64Array;
  private pattern: Float64Array;
  private maskSlope: Float64Array;
  private patternSlope: Float64Array;

  /**
   * `draw` gives uniform numbers in [0, 1): the pattern starts uniform over the input range and
   * the mask uniform in [0, maskScale) (Neural Cleanse starts both uniform: maskScale 1).
   */
  constructor(readonly geometry: SampleGeometry, draw: () => number, maskScale = 1) {
    this.hw = geometry.height * geometry.width;
    this.n = sampleValues(geometry);
    this.channel = channelIndex(geometry);
    this.pixel = pixelIndex(geometry);
    this.params = new Float64Array(this.hw + this.n);
    for (let i = 0; i < this.params.length; i++) this.params[i] = atanhOfUnit(i < this.hw ? maskScale * draw() : draw());
    this.mask = new Float64Array(this.hw);
    this.pattern = new Float64Array(this.n);
    this.maskSlope = new Float64Array(this.hw);
    this.patternSlope = new Float64Array(this.n);
    this.refresh();
  }

  /** Call after params change. */
  refresh(): void {
    const { min, max } = this.geometry.range;
    for (let p = 0; p < this.hw; p++) {
      const t = Math.tanh(this.params[p]);
      this.mask[p] = (t + 1) / 2;
      this.maskSlope[p] = (1 - t * t) / 2;
    }
    for (let j = 0; j < this.n; j++) {
      const c = this.channel[j], u = Math.tanh(this.params[this.hw + j]);
      this.pattern[j] = min[c] + (max[c] - min[c]) * (u + 1) / 2;
      this.patternSlope[j] = (max[c] - min[c]) * (1 - u * u) / 2;
    }
  }

  compose(x: Float32Array, xo: number, out: Float32Array, oo: number): void {
    for (let j = 0; j < this.n; j++) {
      const m = this.mask[this.pixel[j]];
      out[oo + j] = (1 - m) * x[xo + j] + m * this.pattern[j];
    }
  }

  backward(x: Float32Array, xo: number, dx: Float32Array, dxo: number, grad: Float64Array): void {
    for (let j = 0; j < this.n; j++) {
      const p = this.pixel[j], g = dx[dxo + j];
      if (g === 0) continue;
      grad[p] += g * (this.pattern[j] - x[xo + j]) * this.maskSlope[p];
      grad[this.hw + j] += g * this.mask[p] * this.patternSlope[j];
    }
  }

  norm(): number {
    let s = 0;
    for (let p = 0; p < this.hw; p++) s += this.mask[p];
    return s;
  }

  addPenaltyGradient(lambda: number, grad: Float64Array): void {
    if (lambda === 0) return;
    for (let p = 0; p < this.hw; p++) grad[p] += lambda * this.maskSlope[p];
  }

  toTrigger(target: number, sources: number[], params: Float64Array = this.params): ReversedTrigger {
    const { min, max } = this.geometry.range;
    const mask = Float32Array.from({ length: this.hw }, (_, p) => (Math.tanh(params[p]) + 1) / 2);
    const pattern = Float32Array.from({ length: this.n }, (_, j) => {
      const c = this.channel[j];
      return min[c] + (max[c] - min[c]) * (Math.tanh(params[this.hw + j]) + 1) / 2;
    });
    return { kind: 'patch', target, sources, mask, pattern, range: { min: [...min], max: [...max] } };
  }
}

export class PerturbationObjective implements Objective {
  readonly kind = 'perturbation' as const;
  readonly params: Float64Array;
  private readonly n: number;
  private readonly channel: Int32Array;

  /** Starts at v = 0: the smallest perturbation is grown, not shrunk. */
  constructor(readonly geometry: SampleGeometry) {
    this.n = sampleValues(geometry);
    this.channel = channelIndex(geometry);
    this.params = new Float64Array(this.n);
  }

  refresh(): void {}

  compose(x: Float32Array, xo: number, out: Float32Array, oo: number): void {
    const { min, max } = this.geometry.range;
    for (let j = 0; j < this.n; j++) {
      const c = this.channel[j];
      out[oo + j] = Math.min(Math.max(x[xo + j] + this.params[j], min[c]), max[c]);
    }
  }

  backward(x: Float32Array, xo: number, dx: Float32Array, dxo: number, grad: Float64Array): void {
    const { min, max } = this.geometry.range;
    for (let j = 0; j < this.n; j++) {
      const c = this.channel[j], v = x[xo + j] + this.params[j];
      if (v > min[c] && v < max[c]) grad[j] += dx[dxo + j];
    }
  }

  norm(): number {
    let s = 0;
    for (let j = 0; j < this.n; j++) s += this.params[j] ** 2;
    return Math.sqrt(s);
  }

  addPenaltyGradient(lambda: number, grad: Float64Array): void {
    if (lambda === 0) return;
    for (let j = 0; j < this.n; j++) grad[j] += 2 * lambda * this.params[j];
  }

  toTrigger(target: number, sources: number[], params: Float64Array = this.params): ReversedTrigger {
    const { min, max } = this.geometry.range;
    return { kind: 'perturbation', target, sources, perturbation: Float32Array.from(params), range: { min: [...min], max: [...max] } };
  }
}

/** Control points per side of the warp field (the field is bilinear between them). */
export const WARP_GRID = 8;

/** Bilinear upsampling weights from a G×G control grid to an H×W image (align-corners). */
interface Upsampling {
  /** For pixel p: the four control indices at 4p..4p+3 and their weights. */
  index: Int32Array;
  weight: Float64Array;
}

function upsampling(g: number, h: number, w: number): Upsampling {
  const index = new Int32Array(4 * h * w), weight = new Float64Array(4 * h * w);
  const axis = (i: number, n: number) => {
    const u = n > 1 ? (i * (g - 1)) / (n - 1) : 0;
    const a = Math.min(Math.floor(u), g - 2), f = u - a;
    return { a, f };
  };
  for (let i = 0; i < h; i++) {
    const r = axis(i, h);
    for (let j = 0; j < w; j++) {
      const c = axis(j, w), p = 4 * (i * w + j);
      const idx = [r.a * g + c.a, r.a * g + c.a + 1, (r.a + 1) * g + c.a, (r.a + 1) * g + c.a + 1];
      const wt = [(1 - r.f) * (1 - c.f), (1 - r.f) * c.f, r.f * (1 - c.f), r.f * c.f];
      for (let k = 0; k < 4; k++) {
        index[p + k] = idx[k];
        weight[p + k] = wt[k];
      }
    }
  }
  return { index, weight };
}

export class WarpObjective implements Objective {
  readonly kind = 'warp' as const;
  /** Control displacements: dy of every control point, then dx (pixels). */
  readonly params: Float64Array;
  private readonly hw: number;
  private readonly cells: number;
  private readonly up: Upsampling;
  /** The displacement of every pixel for the current params. */
  private readonly dy: Float64Array;
  private readonly dx: Float64Array;

  /** Starts at d = 0 (no warp). */
  constructor(readonly geometry: SampleGeometry, readonly grid = WARP_GRID) {
    this.hw = geometry.height * geometry.width;
    this.cells = grid * grid;
    this.params = new Float64Array(2 * this.cells);
    this.up = upsampling(grid, geometry.height, geometry.width);
    this.dy = new Float64Array(this.hw);
    this.dx = new Float64Array(this.hw);
  }

  refresh(): void {
    fieldOf(this.params, this.up, this.cells, this.dy, this.dx);
  }

  compose(x: Float32Array, xo: number, out: Float32Array, oo: number): void {
    warpSample(this.geometry, this.dy, this.dx, x, xo, out, oo);
  }

  backward(x: Float32Array, xo: number, dx: Float32Array, dxo: number, grad: Float64Array): void {
    const { height: H, width: W, channels: C, layout } = this.geometry;
    const hw = this.hw;
    const at = (c: number, p: number) => xo + (layout === 'NCHW' ? c * hw + p : p * C + c);
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        const p = i * W + j;
        const yy = i + this.dy[p], xx = j + this.dx[p];
        const yIn = yy > 0 && yy < H - 1, xIn = xx > 0 && xx < W - 1;
        if (!yIn && !xIn) continue;
        const yc = Math.min(Math.max(yy, 0), H - 1), xc = Math.min(Math.max(xx, 0), W - 1);
        const y0 = Math.min(Math.floor(yc), Math.max(H - 2, 0)), x0 = Math.min(Math.floor(xc), Math.max(W - 2, 0));
        const y1 = Math.min(y0 + 1, H - 1), x1 = Math.min(x0 + 1, W - 1);
        const fy = yc - y0, fx = xc - x0;
        let gy = 0, gx = 0;
        for (let c = 0; c < C; c++) {
          const g = dx[dxo + (layout === 'NCHW' ? c * hw + p : p * C + c)];
          if (g === 0) continue;
          const a = x[at(c, y0 * W + x0)], b = x[at(c, y0 * W + x1)], d = x[at(c, y1 * W + x0)], e = x[at(c, y1 * W + x1)];
          if (yIn) gy += g * ((1 - fx) * (d - a) + fx * (e - b));
          if (xIn) gx += g * ((1 - fy) * (b - a) + fy * (e - d));
        }
        if (gy === 0 && gx === 0) continue;
        for (let k = 0; k < 4; k++) {
          const q = this.up.index[4 * p + k], w = this.up.weight[4 * p + k];
          grad[q] += w * gy;
          grad[this.cells + q] += w * gx;
        }
      }
    }
  }

  norm(): number {
    let s = 0;
    for (let p = 0; p < this.hw; p++) s += this.dy[p] ** 2 + this.dx[p] ** 2;
    return Math.sqrt(s);
  }

  addPenaltyGradient(lambda: number, grad: Float64Array): void {
    if (lambda === 0) return;
    for (let p = 0; p < this.hw; p++) {
      for (let k = 0; k < 4; k++) {
        const q = this.up.index[4 * p + k], w = this.up.weight[4 * p + k];
        grad[q] += 2 * lambda * w * this.dy[p];
        grad[this.cells + q] += 2 * lambda * w * this.dx[p];
      }
    }
  }

  toTrigger(target: number, sources: number[], params: Float64Array = this.params): ReversedTrigger {
    const dy = new Float64Array(this.hw), dx = new Float64Array(this.hw);
    fieldOf(params, this.up, this.cells, dy, dx);
    const { min, max } = this.geometry.range;
    const flow = new Float32Array(2 * this.hw);
    flow.set(dy);
    flow.set(dx, this.hw);
    return { kind: 'warp', target, sources, flow, range: { min: [...min], max: [...max] } };
  }
}

function fieldOf(params: Float64Array, up: Upsampling, cells: number, dy: Float64Array, dx: Float64Array): void {
  for (let p = 0; p < dy.length; p++) {
    let a = 0, b = 0;
    for (let k = 0; k < 4; k++) {
      const q = up.index[4 * p + k], w = up.weight[4 * p + k];
      a += w * params[q];
      b += w * params[cells + q];
    }
    dy[p] = a;
    dx[p] = b;
  }
}

/**
 * x resampled bilinearly at (i + dy, j + dx) for every pixel, positions clamped to the image
 * (border padding), for one sample in the geometry's layout.
 */
export function warpSample(g: Pick<SampleGeometry, 'height' | 'width' | 'channels' | 'layout'>, dy: ArrayLike<number>, dx: ArrayLike<number>, x: Float32Array, xo: number, out: Float32Array, oo: number): void {
  const { height: H, width: W, channels: C, layout } = g;
  const hw = H * W;
  const idx = (c: number, p: number) => (layout === 'NCHW' ? c * hw + p : p * C + c);
  for (let i = 0; i < H; i++) {
    for (let j = 0; j < W; j++) {
      const p = i * W + j;
      const yc = Math.min(Math.max(i + dy[p], 0), H - 1), xc = Math.min(Math.max(j + dx[p], 0), W - 1);
      const y0 = Math.floor(yc), x0 = Math.floor(xc);
      const y1 = Math.min(y0 + 1, H - 1), x1 = Math.min(x0 + 1, W - 1);
      const fy = yc - y0, fx = xc - x0;
      for (let c = 0; c < C; c++) {
        const a = x[xo + idx(c, y0 * W + x0)], b = x[xo + idx(c, y0 * W + x1)], d = x[xo + idx(c, y1 * W + x0)], e = x[xo + idx(c, y1 * W + x1)];
        out[oo + idx(c, p)] = (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * d + fx * e);
      }
    }
  }
}
