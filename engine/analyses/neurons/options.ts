/** Reads a neuron method's options (`--option bnp.samples=500`, "methodOptions" in the config) with errors a user can act on. */
import { subset, type Dataset } from '../../data/types';
import { usageError } from '../../errors';
import type { OptionSpec } from '../../method-options';

/** `thresholdMultiplier`, u of mean ± u·std, which every neuron method with a per-layer threshold takes. */
export const THRESHOLD_MULTIPLIER_OPTION: OptionSpec = { type: 'number', doc: 'threshold multiplier u of mean ± u·std for this method (default: --threshold, else 3)' };

export function numberOption(options: Record<string, unknown>, method: string, key: string, fallback: number, range: { min?: number; max?: number; integer?: boolean } = {}): number {
  const v = options[key];
  if (v === undefined || v === '') return fallback;
  const n = typeof v === 'number' ? v : Number(v);
  const { min = -Infinity, max = Infinity, integer = false } = range;
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    const what = `${integer ? 'a whole number' : 'a number'}${min > -Infinity ? ` ≥ ${min}` : ''}${max < Infinity ? ` and ≤ ${max}` : ''}`;
    throw usageError(`option ${method}.${key} must be ${what}, got '${String(v)}'`);
  }
  return n;
}

/** The first `limit` samples (all when limit is 0 or the set is smaller). */
export function firstSamples(data: Dataset, limit: number): Dataset {
  return limit > 0 && data.n > limit ? { ...subset(data, Array.from({ length: limit }, (_, i) => i)), source: data.source } : data;
}
