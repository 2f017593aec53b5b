/**
 * The gamma distribution MM-BD fits to its null statistics, and the order-statistic p-value of the
 * largest statistic under that fit.
 *
 * The fit is scipy.stats.gamma.fit with a free location, as the authors' code calls it: start from
 * the shape whose skewness 2/√a matches the data's (a = 4 / (1e-8 + skew²)), location and scale from
 * the first two moments (or, when that start puts data below the support, location = min − 10% of
 * the range and scale 1), then minimise the penalised negative log-likelihood (each point outside
 * the support or with a non-finite density costs 100·log(max double)) with Nelder–Mead.
 */
import { nelderMead } from './nelder-mead';

export interface GammaFit {
  shape: number;
  loc: number;
  scale: number;
}

const LOG_MAX_DOUBLE = Math.log(Number.MAX_VALUE);
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** log Γ(x) for x > 0 (Lanczos, g = 7; relative error ~1e-15). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let s = LANCZOS[0];
  for (let i = 1; i < 9; i++) s += LANCZOS[i] / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

/**
 * Regularised incomplete gamma functions P(a, x) and Q(a, x) = 1 − P(a, x): the series for
 * x < a + 1, the continued fraction (modified Lentz) otherwise; each is computed directly so the
 * small one keeps its precision.
 */
export function regularizedGamma(a: number, x: number): { p: number; q: number } {
  if (!(a > 0) || Number.isNaN(x)) return { p: NaN, q: NaN };
  if (x <= 0) return { p: 0, q: 1 };
  if (x === Infinity) return { p: 1, q: 0 };
  const front = Math.exp(-x + a * Math.log(x) - logGamma(a));
  const eps = 1e-16;
  if (x < a + 1) {
    let ap = a, term = 1 / a, sum = term;
    for (let n = 0; n < 10_000; n++) {
      ap += 1;
      term *= x / ap;
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * eps) break;
    }
    const p = Math.min(1, sum * front);
    return { p, q: 1 - p };
  }
  const tiny = 1e-300;
  let b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < eps) break;
  }
  const q = Math.min(1, front * h);
  return { p: 1 - q, q };
}

/** scipy's penalised negative log-likelihood of a gamma(shape, loc, scale) for the data. */
export function gammaPenalizedNll(data: readonly number[], shape: number, loc: number, scale: number): number {
  if (!(shape > 0) || !(scale > 0)) return Infinity;
  let bad = 0, sum = 0;
  const lg = logGamma(shape);
  for (const v of data) {
    const x = (v - loc) / scale;
    if (!(x >= 0)) {
      bad++;
      continue;
    }
    // xlogy: (a − 1)·log x is 0 when a = 1, even at x = 0.
    const logpdf = (shape === 1 ? 0 : (shape - 1) * Math.log(x)) - x - lg;
    if (Number.isFinite(logpdf)) sum += logpdf;
    else bad++;
  }
  return -sum + bad * LOG_MAX_DOUBLE * 100 + data.length * Math.log(scale);
}

function moments(data: readonly number[]): { mean: number; m2: number; m3: number } {
  const n = data.length;
  const mean = data.reduce((s, v) => s + v, 0) / n;
  let m2 = 0, m3 = 0;
  for (const v of data) {
    const d = v - mean;
    m2 += d * d;
    m3 += d * d * d;
  }
  return { mean, m2: m2 / n, m3: m3 / n };
}

/** The start scipy's gamma.fit uses: shape from the skewness, loc and scale from the moments unless that start leaves data below the support. */
export function gammaFitStart(data: readonly number[]): GammaFit {
  const { mean, m2, m3 } = moments(data);
  const skew = m3 / Math.pow(m2, 1.5);
  const shape = 4 / (1e-8 + skew * skew);
  let scale = Math.sqrt(m2 / shape);
  let loc = mean - scale * shape;
  if (!Number.isFinite(loc)) loc = 0;
  if (!(Number.isFinite(scale) && scale > 0)) scale = 1;
  const min = Math.min(...data), max = Math.max(...data);
  if (loc < min) return { shape, loc, scale };
  return { shape, loc: min - 0.1 * (max - min), scale: 1 };
}

/**
 * Maximum-likelihood gamma fit with free location, as scipy.stats.gamma.fit(data). Needs at least
 * two distinct values; returns undefined otherwise (a fit of a constant has no scale).
 */
export function fitGamma(data: readonly number[]): GammaFit | undefined {
  if (data.length < 2 || data.some((v) => !Number.isFinite(v)) || Math.min(...data) === Math.max(...data)) return undefined;
  const start = gammaFitStart(data);
  const r = nelderMead(([a, loc, scale]) => gammaPenalizedNll(data, a, loc, scale), [start.shape, start.loc, start.scale]);
  const [shape, loc, scale] = r.x;
  if (!(shape > 0 && scale > 0)) return undefined;
  return { shape, loc, scale };
}

/** Survival function 1 − F(x) of the fitted gamma. */
export function gammaSurvival(fit: GammaFit, x: number): number {
  return regularizedGamma(fit.shape, (x - fit.loc) / fit.scale).q;
}

/**
 * Order-statistic p-value of the largest of k statistics drawn from the fitted null:
 * P(max of k draws ≥ x) = 1 − F(x)^k, computed as −expm1(k·log1p(−Q)) so that tiny values keep
 * their digits where 1 − F^k would round to 0.
 */
export function maxOrderPValue(fit: GammaFit, x: number, k: number): number {
  const q = gammaSurvival(fit, x);
  if (q >= 1) return 1;
  return -Math.expm1(k * Math.log1p(-q));
}
