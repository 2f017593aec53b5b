/**
 * The two trigger parameterisations reversal optimises, as plain functions of one sample's worth
 * of values: compose the triggered input from a clean one, and chain ∂L/∂x' back to the trigger's
 * parameters. The network's gradient ∂L/∂x' comes from the gradient session; everything here is
 * cheap elementwise work in JS.
 *
 *  patch (Neural Cleanse): m = (tanh a + 1)/2 per pixel, P = lo + (hi − lo)·(tanh b + 1)/2 per value,
 *    x' = (1 − m)·x + m·P; norm |m|₁; statistic 1/|m|₁.
 *  perturbation (Xiang et al.): x' = clamp(x + v, lo, hi); norm ‖v‖₂; statistic 1/‖v‖₂.
 */
import type { ReversedTrigger } from './trigger';

export type ObjectiveKind = 'patch' | 'perturbation';

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
  /** The trigger's size: |m|₁ (patch) or ‖v‖₂ (perturbation). */
  norm(): number;
  /** Adds λ·∂R/∂params of the size penalty R (|m|₁ or ‖v‖₂²) to `grad`. */
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
