/**
 * Median-absolute-deviation outlier test (Hampel), as Neural Cleanse and BNA's pair detector use it:
 * MAD = 1.4826 · median|v − median(v)|, anomaly index = |v − median| / MAD. The constant makes MAD a
 * consistent estimate of the standard deviation for normal data.
 */

export const MAD_CONSISTENCY = 1.4826;

export interface MadResult {
  median: number;
  /** 1.4826 · median absolute deviation. */
  mad: number;
  /** |v − median| / MAD per value; 0 everywhere when MAD is 0 (no spread: nothing can be called an outlier). */
  anomalyIndex: number[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function madAnomaly(values: readonly number[]): MadResult {
  const m = median(values);
  const mad = MAD_CONSISTENCY * median(values.map((v) => Math.abs(v - m)));
  const anomalyIndex = values.map((v) => (mad > 0 ? Math.abs(v - m) / mad : 0));
  return { median: m, mad, anomalyIndex };
}

/**
 * Flags the values on one side of the median whose anomaly index exceeds the threshold:
 * 'below' for Neural Cleanse's mask norms (small triggers are suspicious), 'above' for pair
 * statistics 1/|m|₁ or 1/‖v‖₂ (large = easy to flip).
 */
export function madOutliers(values: readonly number[], threshold: number, side: 'below' | 'above'): MadResult & { flagged: boolean[] } {
  const r = madAnomaly(values);
  const flagged = values.map((v, i) => (side === 'below' ? v < r.median : v > r.median) && r.anomalyIndex[i] > threshold);
  return { ...r, flagged };
}
