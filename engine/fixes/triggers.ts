/**
 * The reversed triggers as the fixes use them, whatever their kind: stamped through the
 * detectors' own stampTrigger, grouped by target, named for people. A kind that cannot be
 * stamped in input space (a feature-space trigger) is reported with the reason, never dropped
 * silently.
 */
import { stampTrigger, type ReversedTrigger } from '../analyses/reversal/trigger';
import type { Dataset } from '../data/types';

export type Stamped = { ok: true; data: Dataset } | { ok: false; reason: string };

/** Stamps `trigger` on the chosen samples, or says why it cannot be stamped on input images. */
export function stampOrExplain(trigger: ReversedTrigger, data: Dataset, indices: ArrayLike<number>): Stamped {
  let stamped: Dataset;
  try {
    stamped = stampTrigger(trigger, data, indices);
  } catch (e) {
    return { ok: false, reason: `a ${trigger.kind} trigger cannot be stamped on input images (${e instanceof Error ? e.message : String(e)})` };
  }
  // A kind stampTrigger does not know must not pass as a trigger that moves nothing.
  if (stamped.n !== indices.length || stamped.x.some((v) => !Number.isFinite(v))) return { ok: false, reason: `a ${trigger.kind} trigger gave no valid stamped images` };
  return { ok: true, data: stamped };
}

/** Whether a trigger can be stamped on input images (tried on one sample). */
export function stampable(trigger: ReversedTrigger, data: Dataset): Stamped | { ok: true } {
  if (data.n === 0) return { ok: true };
  const r = stampOrExplain(trigger, data, [0]);
  return r.ok ? { ok: true } : r;
}

/** "patch trigger 3 → 0", "perturbation trigger for class 2 (all other classes)". */
export function triggerLabel(t: ReversedTrigger): string {
  return t.sources.length === 0 ? `${t.kind} trigger for class ${t.target} (all other classes)` : `${t.kind} trigger ${t.sources.join(', ')} → ${t.target}`;
}

/** Samples a trigger is tested on: reference class among its sources (all classes when it names none), never its target. */
export function sourceIndices(reference: ArrayLike<number>, trigger: ReversedTrigger): number[] {
  const sources = new Set(trigger.sources);
  const out: number[] = [];
  for (let i = 0; i < reference.length; i++) if (reference[i] !== trigger.target && (sources.size === 0 || sources.has(reference[i]))) out.push(i);
  return out;
}

/** Triggers by target class, targets ascending. */
export function byTarget(triggers: readonly ReversedTrigger[]): Map<number, ReversedTrigger[]> {
  const map = new Map<number, ReversedTrigger[]>();
  for (const t of [...triggers].sort((a, b) => a.target - b.target)) {
    let list = map.get(t.target);
    if (!list) map.set(t.target, (list = []));
    list.push(t);
  }
  return map;
}
