/** Reads a positive number from a method's options (`--option pairs.threshold=5`), naming the option when it is not one. */
import { usageError } from '../errors';

export function positiveOption(options: Record<string, unknown>, method: string, key: string, fallback: number): number {
  const v = options[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw usageError(`option ${method}.${key} must be a positive number, got '${String(v)}'`);
  return n;
}
