/**
 * The numerics the neuron methods share, computed in float64 the way the reference code does:
 * unbiased variances (divide by n − 1, as PyTorch's var()/std()), layer thresholds
 * mean ± u·std, the largest singular value of a small matrix, and EP's histogram entropy.
 */

export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

/** Unbiased standard deviation; 0 for fewer than two values. */
export function unbiasedStd(values: ArrayLike<number>): number {
  const n = values.length;
  if (n < 2) return 0;
  const m = mean(values);
  let s = 0;
  for (let i = 0; i < n; i++) s += (values[i] - m) ** 2;
  return Math.sqrt(s / (n - 1));
}

export type Direction = 'above' | 'below';

/** mean + u·std when large scores are suspicious, mean − u·std when small ones are (u: the threshold multiplier). */
export function layerThreshold(scores: ArrayLike<number>, thresholdMultiplier: number, direction: Direction): number {
  const m = mean(scores), s = unbiasedStd(scores);
  return direction === 'above' ? m + thresholdMultiplier * s : m - thresholdMultiplier * s;
}

export function beyond(score: number, threshold: number, direction: Direction): boolean {
  return direction === 'above' ? score > threshold : score < threshold;
}

/**
 * How many layer standard deviations a score lies on the suspicious side of its layer mean: the
 * smallest u at which the fixed-threshold rule would flag it. Ranks neurons across layers.
 */
export function suspicion(scores: ArrayLike<number>, direction: Direction): Float64Array {
  const m = mean(scores), s = unbiasedStd(scores);
  const out = new Float64Array(scores.length);
  for (let i = 0; i < scores.length; i++) {
    const d = direction === 'above' ? scores[i] - m : m - scores[i];
    out[i] = s > 0 ? d / s : 0;
  }
  return out;
}

/** Eigenvalues of a symmetric n×n matrix (row-major, float64) by cyclic Jacobi rotations. */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0, diag = 0;
    for (let i = 0; i < n; i++) {
      diag += m[i * n + i] ** 2;
      for (let j = i + 1; j < n; j++) off += m[i * n + j] ** 2;
    }
    if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (apq === 0) continue;
        const theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = m[k * n + p], akq = m[k * n + q];
          m[k * n + p] = c * akp - s * akq;
          m[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = m[p * n + k], aqk = m[q * n + k];
          m[p * n + k] = c * apk - s * aqk;
          m[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = m[i * n + i];
  return out;
}

/**
 * Largest singular value of a rows×cols matrix (row-major): the square root of the largest
 * eigenvalue of the smaller of its two Gram matrices.
 */
export function largestSingularValue(w: ArrayLike<number>, rows: number, cols: number, scale = 1): number {
  const byCols = cols <= rows;
  const n = byCols ? cols : rows;
  const gram = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      if (byCols) for (let r = 0; r < rows; r++) s += w[r * cols + i] * w[r * cols + j];
      else for (let c = 0; c < cols; c++) s += w[i * cols + c] * w[j * cols + c];
      gram[i * n + j] = gram[j * n + i] = s;
    }
  }
  const eig = symmetricEigenvalues(gram, n);
  let top = 0;
  for (const e of eig) top = Math.max(top, e);
  return Math.sqrt(top) * Math.abs(scale);
}

/**
 * EP's histogram entropy −Σ p ln p of one channel's standardised values. Bins start at `lo`
 * (the layer-wide minimum) with width `width`, `bins` of them; a value falls in bin n when
 * lo + n·w < x < lo + (n+1)·w (strict on both sides, so the extremes themselves are not
 * counted); p = count / N with N all of the channel's values.
 */
export function histogramEntropy(values: ArrayLike<number>, lo: number, width: number, bins: number): number {
  const n = values.length;
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const guess = Math.floor((v - lo) / width);
    for (const b of [guess - 1, guess, guess + 1]) {
      if (b >= 0 && b < bins && lo + b * width < v && v < lo + (b + 1) * width) {
        counts.set(b, (counts.get(b) ?? 0) + 1);
        break;
      }
    }
  }
  let h = 0;
  for (const c of counts.values()) {
    const p = c / n;
    h -= p * Math.log(p);
  }
  return h;
}

/**
 * Mean and unbiased variance per channel, merged batch by batch (Chan et al.) in float64 so
 * large means do not swamp small variances.
 */
export class ChannelMoments {
  readonly count: Float64Array;
  readonly mean: Float64Array;
  private readonly m2: Float64Array;

  constructor(readonly channels: number) {
    this.count = new Float64Array(channels);
    this.mean = new Float64Array(channels);
    this.m2 = new Float64Array(channels);
  }

  /** Adds the values of channel c found at data[offset + k·stride], k < length. */
  add(c: number, data: ArrayLike<number>, offset: number, length: number): void {
    if (length === 0) return;
    let s = 0;
    for (let k = 0; k < length; k++) s += data[offset + k];
    const m = s / length;
    let q = 0;
    for (let k = 0; k < length; k++) q += (data[offset + k] - m) ** 2;
    const n0 = this.count[c], n = n0 + length;
    const d = m - this.mean[c];
    this.mean[c] += (d * length) / n;
    this.m2[c] += q + (d * d * n0 * length) / n;
    this.count[c] = n;
  }

  variance(c: number): number {
    return this.count[c] > 1 ? this.m2[c] / (this.count[c] - 1) : 0;
  }
}
