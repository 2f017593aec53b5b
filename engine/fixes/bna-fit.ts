/**
 * BNA's per-channel fit: a transform h(z) = max(min((z − μ)/σ, ω), υ) chosen so that the
 * distribution of trigger-stamped activations after h matches the clean activation distribution,
 * measured by the total-variation distance between a hard histogram of the clean values and a
 * sigmoid "soft" histogram of the transformed stamped values (differentiable in μ, σ, ω, υ).
 *
 * Everything here works on BN-normalised values n = (z − running_mean)/√(running_var + ε), with
 * h written as clamp((n − a)/b, υ, ω); μ = running_mean + a·sd and σ = b·sd. At a = 0, b = 1 the
 * transform is BN's own normalisation, so Adam's step size means the same thing in every layer.
 */

export interface Bins {
  /** b_0 = min of the clean values; finite intervals have width `width`. */
  start: number;
  width: number;
  /** M intervals: I_1 = (−∞, b_1), I_i = [b_{i−1}, b_i), I_M = [b_{M−1}, ∞). */
  count: number;
}

/** Intervals over the clean values' range: M = ⌈(max − min)/Δb⌉ (at least 2, so there is a boundary). */
export function binsFor(clean: ArrayLike<number>, width: number): Bins {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < clean.length; i++) {
    const v = clean[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) throw new Error('no clean values to build a histogram from');
  return { start: lo, width, count: Math.max(2, Math.ceil((hi - lo) / width)) };
}

/** Boundary b_j = start + j·width for j = 1..M−1. */
const boundary = (bins: Bins, j: number) => bins.start + j * bins.width;

/** Index of the interval holding v (hard indicator). */
function intervalOf(bins: Bins, v: number): number {
  const j = Math.floor((v - bins.start) / bins.width); // v ≥ b_j
  return Math.min(Math.max(j, 0), bins.count - 1);
}

export function hardHistogram(values: ArrayLike<number>, bins: Bins): Float64Array {
  const p = new Float64Array(bins.count);
  for (let i = 0; i < values.length; i++) p[intervalOf(bins, values[i])] += 1;
  for (let i = 0; i < p.length; i++) p[i] /= values.length;
  return p;
}

/**
 * Boundaries further than this many widths from a value contribute exactly 0 or 1 in float64
 * terms (σ(±30) is 1 or 0 within 1e-13); nearer ones are evaluated.
 */
function reachOf(tau: number, width: number): number {
  return Math.max(1, Math.ceil(30 / (tau * width)));
}

/** One evaluation of the soft histogram: q, and every sigmoid it took, kept for the gradient. */
interface SoftPass {
  q: Float64Array;
  /** σ(τ(v_k − b_j)) for j = lo[k]…hi[k], at sig[k·stride + (j − lo[k])]. */
  sig: Float64Array;
  lo: Int32Array;
  hi: Int32Array;
  stride: number;
}

/** Buffers one fit reuses across its evaluations (a fit runs once per unit, tens of thousands per layer). */
interface Workspace {
  h: Float64Array;
  sig: Float64Array;
  lo: Int32Array;
  hi: Int32Array;
}

function workspaceFor(n: number, bins: Bins, tau: number): Workspace {
  const stride = 2 * reachOf(tau, bins.width) + 1;
  return { h: new Float64Array(n), sig: new Float64Array(n * stride), lo: new Int32Array(n), hi: new Int32Array(n) };
}

function softPass(values: ArrayLike<number>, bins: Bins, tau: number, work?: Workspace): SoftPass {
  const M = bins.count, n = values.length;
  // F_j = mean_n σ(τ(v_n − b_j)), j = 1..M−1; q_1 = 1 − F_1, q_i = F_{i−1} − F_i, q_M = F_{M−1}.
  const F = new Float64Array(M + 1);
  const below = new Float64Array(M + 1); // counts of values far above boundary j (σ = 1), as a difference array
  const reach = reachOf(tau, bins.width);
  const stride = 2 * reach + 1;
  const growth = Math.exp(tau * bins.width);
  const { sig, lo, hi } = work ?? workspaceFor(n, bins, tau);
  for (let k = 0; k < n; k++) {
    const v = values[k];
    const c = Math.floor((v - bins.start) / bins.width);
    const l = Math.max(1, c - reach), h = Math.min(M - 1, c + reach);
    lo[k] = l;
    hi[k] = h;
    // Boundaries j < l are far below v: σ = 1 for j in [1, l).
    if (l > 1) {
      below[1] += 1;
      below[Math.min(l, M)] -= 1;
    }
    // σ(x_j) with x_j = τ(v − b_j) falling by τ·Δb per boundary: e^{−x_j} = e^{−x_l}·e^{τΔb(j−l)}, one exp
    // per value (|x_j| ≤ τΔb(reach + 1), so neither factor overflows).
    let e = Math.exp(-tau * (v - boundary(bins, l)));
    for (let j = l; j <= h; j++) {
      const s = 1 / (1 + e);
      sig[k * stride + (j - l)] = s;
      F[j] += s;
      e *= growth;
    }
  }
  let run = 0;
  for (let j = 1; j <= M - 1; j++) {
    run += below[j];
    F[j] = (F[j] + run) / n;
  }
  const q = new Float64Array(M);
  q[0] = 1 - F[1];
  for (let i = 1; i < M - 1; i++) q[i] = F[i] - F[i + 1];
  q[M - 1] = F[M - 1];
  return { q, sig, lo, hi, stride };
}

/** ∂L/∂v per value from a pass's sigmoids, given `upstream` = ∂L/∂q. */
function softGradient(pass: SoftPass, tau: number, upstream: ArrayLike<number>): Float64Array {
  const M = pass.q.length, n = pass.lo.length;
  // ∂L/∂F_j = upstream[j] − upstream[j−1] (F_j enters q_{j+1} with + and q_j with −), 0-based q index.
  const dF = Float64Array.from({ length: M + 1 }, (_, j) => (j >= 1 && j <= M - 1 ? upstream[j] - upstream[j - 1] : 0));
  const dv = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let g = 0;
    const l = pass.lo[k], base = k * pass.stride;
    for (let j = l; j <= pass.hi[k]; j++) {
      const s = pass.sig[base + (j - l)];
      g += dF[j] * tau * s * (1 - s);
    }
    dv[k] = g / n;
  }
  return dv;
}

/**
 * The soft histogram q of `values` (1[v ∈ I_i] ≈ σ(τ(v − b_{i−1})) − σ(τ(v − b_i)), one sigmoid for
 * the two outer intervals); with `upstream` = ∂L/∂q it also returns ∂L/∂v per value.
 */
export function softHistogram(values: ArrayLike<number>, bins: Bins, tau: number, upstream?: ArrayLike<number>): { q: Float64Array; dv?: Float64Array } {
  const pass = softPass(values, bins, tau);
  return { q: pass.q, dv: upstream ? softGradient(pass, tau, upstream) : undefined };
}

export function totalVariation(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += Math.abs(p[i] - q[i]);
  return s / 2;
}

/** clamp((n − a)/b, lower, upper): the channel transform in normalised units. */
export interface ChannelTransform {
  shift: number;
  scale: number;
  lower: number;
  upper: number;
}

export const identityTransform = (bound = Infinity): ChannelTransform => ({ shift: 0, scale: 1, lower: -bound, upper: bound });

export function applyTransform(t: ChannelTransform, n: number): number {
  return Math.max(Math.min((n - t.shift) / t.scale, t.upper), t.lower);
}

export interface FitOptions {
  /** Interval width Δb (paper: 0.1). */
  binWidth: number;
  /** Sigmoid sharpness τ (paper: 150). */
  tau: number;
  /** Adam learning rate (authors' code: 0.01). */
  lr: number;
  /** Adam iterations (authors' code: at most 10 per channel). */
  iterations: number;
  /** Initial clip bound ω (authors' code: 3; here 0.5, see docs/bna.md); υ starts at −ω. */
  clip: number;
  /** Where Adam starts: BN's own normalisation (the authors') or moment matching. */
  init: 'identity' | 'moments';
}

export const defaultFitOptions: FitOptions = { binWidth: 0.1, tau: 150, lr: 0.01, iterations: 10, clip: 0.5, init: 'moments' };

/**
 * A starting transform that matches the first two moments: (stamped − a)/b has the clean mean and
 * standard deviation (both standard deviations floored at 0.01, so near-constant units stay finite).
 * The soft-histogram TV has no gradient for mass beyond the clean range (the sigmoids saturate),
 * so starting from the identity leaves far-shifted units where they are; see docs/findings/BL001.md.
 */
export function momentTransform(clean: ArrayLike<number>, stamped: ArrayLike<number>, clip: number, minScale = 0): ChannelTransform {
  const stats = (v: ArrayLike<number>) => {
    let s = 0, s2 = 0;
    for (let i = 0; i < v.length; i++) s += v[i];
    const mean = s / v.length;
    for (let i = 0; i < v.length; i++) s2 += (v[i] - mean) ** 2;
    return { mean, sd: Math.max(Math.sqrt(s2 / Math.max(1, v.length - 1)), 0.01) };
  };
  const c = stats(clean), t = stats(stamped);
  const scale = Math.max(t.sd / c.sd, minScale);
  return { shift: t.mean - scale * c.mean, scale, lower: -clip, upper: clip };
}

export interface ChannelFit {
  transform: ChannelTransform;
  /** TV distance with BN's own normalisation (no correction). */
  tvBefore: number;
  /** TV distance with the fitted transform (soft histogram, as optimised). */
  tvAfter: number;
}

/** The soft-histogram TV distance of the transformed stamped values, and its gradient in (a, b, υ, ω). */
export function tvObjective(t: ChannelTransform, stamped: ArrayLike<number>, p: Float64Array, bins: Bins, tau: number, work = workspaceFor(stamped.length, bins, tau)): { tv: number; grad: ChannelTransform } {
  const h = work.h;
  for (let i = 0; i < h.length; i++) h[i] = applyTransform(t, stamped[i]);
  // One pass of sigmoids serves q and its gradient (the fit's cost is these sigmoids).
  const pass = softPass(h, bins, tau, work);
  const q = pass.q;
  const upstream = Float64Array.from(q, (qi, i) => 0.5 * Math.sign(qi - p[i]));
  const dv = softGradient(pass, tau, upstream);
  const grad: ChannelTransform = { shift: 0, scale: 0, lower: 0, upper: 0 };
  for (let i = 0; i < h.length; i++) {
    const u = (stamped[i] - t.shift) / t.scale;
    const g = dv[i];
    if (u >= t.upper) grad.upper += g;
    else if (u <= t.lower) grad.lower += g;
    else {
      grad.shift += -g / t.scale;
      grad.scale += (-g * u) / t.scale;
    }
  }
  return { tv: totalVariation(p, q), grad };
}

/**
 * Fits one channel: `clean` are the clean images' normalised activations under f, `stamped` the
 * trigger-stamped images' normalised activations under the network corrected so far.
 */
export function fitChannel(clean: ArrayLike<number>, stamped: ArrayLike<number>, options: FitOptions = defaultFitOptions, start?: ChannelTransform): ChannelFit {
  const bins = binsFor(clean, options.binWidth);
  const p = hardHistogram(clean, bins);
  const work = workspaceFor(stamped.length, bins, options.tau);
  const tvBefore = tvObjective(identityTransform(), stamped, p, bins, options.tau, work).tv;
  const keys = ['shift', 'scale', 'lower', 'upper'] as const;
  const t: ChannelTransform = { ...(start ?? identityTransform(options.clip)) };
  const m = { shift: 0, scale: 0, lower: 0, upper: 0 }, v = { ...m };
  const [beta1, beta2, eps] = [0.9, 0.999, 1e-8];
  // Each evaluation gives the TV of the current transform and its gradient: the step's gradient is
  // the previous evaluation's, so every transform is evaluated once.
  let current = tvObjective(t, stamped, p, bins, options.tau, work);
  let best = { transform: { ...t }, tv: current.tv };
  for (let it = 1; it <= options.iterations; it++) {
    const { grad } = current;
    for (const k of keys) {
      m[k] = beta1 * m[k] + (1 - beta1) * grad[k];
      v[k] = beta2 * v[k] + (1 - beta2) * grad[k] ** 2;
      const mh = m[k] / (1 - beta1 ** it), vh = v[k] / (1 - beta2 ** it);
      t[k] -= (options.lr * mh) / (Math.sqrt(vh) + eps);
    }
    t.scale = Math.max(t.scale, 1e-3);
    if (t.lower > t.upper) [t.lower, t.upper] = [t.upper, t.lower];
    current = tvObjective(t, stamped, p, bins, options.tau, work);
    if (current.tv < best.tv) best = { transform: { ...t }, tv: current.tv };
  }
  // Ten steps from a moment-matched start can end farther from the clean histogram than BN's own
  // normalisation; a correction that moves the stamped distribution away is no correction.
  if (tvBefore <= best.tv) return { transform: identityTransform(), tvBefore, tvAfter: tvBefore };
  return { transform: best.transform, tvBefore, tvAfter: best.tv };
}
