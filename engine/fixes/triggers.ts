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
  const base = t.sources.length === 0 ? `${t.kind} trigger for class ${t.target} (all other classes)` : `${t.kind} trigger ${t.sources.join(', ')} → ${t.target}`;
  return t.atFlagBound ? `${base}, grown ×${t.atFlagBound.toFixed(1)} to the flag bound` : base;
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

/** The detector's size of a trigger: |m|₁ (patch), ‖v‖₂ (perturbation), ‖d‖₂ in pixels (warp). */
export function triggerSize(t: ReversedTrigger): number {
  if (t.kind === 'patch') return t.mask!.reduce((a, v) => a + v, 0);
  const v = t.kind === 'perturbation' ? t.perturbation! : t.flow!;
  return Math.sqrt(v.reduce((a, x) => a + x * x, 0));
}

/**
 * The trigger grown to the largest size the detector would still flag (its flaggedBelowSize):
 * the perturbation or warp field scaled, the patch mask scaled and capped at 1 (so at most that
 * size). Undefined when the trigger carries no bound or is already that large.
 */
export function atFlagBound(t: ReversedTrigger): ReversedTrigger | undefined {
  const bound = t.flaggedBelowSize;
  if (bound === undefined || !(t.kind === 'patch' || t.kind === 'perturbation' || t.kind === 'warp')) return undefined;
  const size = triggerSize(t);
  if (!(size > 0) || size >= bound) return undefined;
  const factor = bound / size;
  const scaled: ReversedTrigger =
    t.kind === 'patch' ? { ...t, mask: t.mask!.map((m) => Math.min(1, m * factor)) } : t.kind === 'perturbation' ? { ...t, perturbation: t.perturbation!.map((v) => v * factor) } : { ...t, flow: t.flow!.map((v) => v * factor) };
  return { ...scaled, atFlagBound: factor };
}

/** The triggers and, after them, each one's copy grown to the flag bound (where it has a bound and is smaller). */
export function withFlagBoundCopies(triggers: readonly ReversedTrigger[]): ReversedTrigger[] {
  return [...triggers, ...triggers.flatMap((t) => atFlagBound(t) ?? [])];
}
