/**
 * Whether a backdoor survived a repair, asked the way the detector asked it: reverse each trigger
 * again on the repaired model (same kind, target and source classes, the detector's step budget)
 * and see whether one small enough to be flagged still works. Pruning until the *old* reversed
 * trigger fails is not enough: that trigger is the smallest one that worked on the unrepaired
 * model, so it breaks before the attacker's (measured on the prunable BadNets fixture: the
 * reversed trigger failed after 16 BNP neurons while the real one still reached 17.7%).
 */
import { imagesByClass } from '../analyses/reversal/class-images';
import { inputGradient } from '../analyses/reversal/gradient';
import type { ReversedTrigger } from '../analyses/reversal/trigger';
import type { Dataset } from '../data/types';
import type { OnnxModel } from '../graph/model';
import type { Runtime } from '../runtime/session';
import { reestimateAll } from './reestimate';

export interface ReReverseOptions {
  /** Clean images per source class, images per step and steps: the detector's defaults. */
  imagesPerClass: number;
  batchSize: number;
  maxSteps: number;
  seed: number;
  signal?: AbortSignal;
}

export const defaultReReverseOptions: Omit<ReReverseOptions, 'seed'> = { imagesPerClass: 30, batchSize: 8, maxSteps: 60 };

export interface ReReversed {
  /** The trigger it re-reversed from. */
  from: ReversedTrigger;
  /** The new trigger, when one worked. */
  trigger?: ReversedTrigger;
  size: number;
  /** Whether the detector would still flag it: it worked and is no larger than from.flaggedBelowSize. */
  stillFlagged: boolean;
}

/** Only triggers that carry the detector's size bound (one trigger per target) can be asked again. */
export const reReversible = (t: ReversedTrigger) => t.flaggedBelowSize !== undefined && t.target >= 0;

export async function reReverse(model: OnnxModel, runtime: Runtime, data: Dataset, triggers: readonly ReversedTrigger[], o: ReReverseOptions): Promise<ReReversed[]> {
  const asked = triggers.filter(reReversible);
  if (asked.length === 0 || !data.labels) return [];
  const K = Math.max(...Array.from(data.labels), ...asked.flatMap((t) => [t.target, ...t.sources])) + 1;
  const byClass = imagesByClass(data, K, o.imagesPerClass, o.seed);
  const again = await reestimateAll(
    asked.map((t, i) => ({ kind: t.kind, target: t.target, sources: t.sources, images: t.sources.flatMap((s) => byClass[s] ?? []), id: 30_000 + i })),
    data,
    await inputGradient(runtime, model),
    { seed: o.seed, batchSize: o.batchSize, maxSteps: o.maxSteps, signal: o.signal },
  );
  return asked.map((from, i) => {
    const r = again[i];
    if (!r.trigger) return { from, size: r.size, stillFlagged: false };
    return { from, trigger: { ...r.trigger, flaggedBelowSize: from.flaggedBelowSize }, size: r.size, stillFlagged: r.size <= from.flaggedBelowSize! };
  });
}
