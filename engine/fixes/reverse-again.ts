/**
 * The check every fix's outcome goes through before it may say `removed` or `reduced`: reverse
 * each flagged trigger again on the fixed model (same kind, target and source classes, the
 * detector's step budget; on a BNA model against the corrected network g_t that answers the
 * target) and measure the new trigger on the held-out images. A fix is graded on the triggers
 * the scan reversed on the unfixed model, and a trigger-based fix (BNA, unlearning) was fitted to
 * exactly those, so they are an in-sample estimate: on a Blended zoo model BNA drove them to
 * 1.9% while the real trigger still worked on 65.7%. A trigger that can be reversed again, no
 * larger than the detector would flag, and that still works on held-out images, is the backdoor
 * still there.
 */
import type { ReversedTrigger } from '../analyses/reversal/trigger';
import type { Dataset } from '../data/types';
import type { OnnxModel } from '../graph/model';
import type { Runtime } from '../runtime/session';
import { bnaStructure, networkOf } from './bna-graph';
import { FixProbe } from './measure';
import { defaultReReverseOptions, reReverse, reReversible } from './re-reverse';
import { triggerLabel } from './triggers';

export interface ReversedAgain {
  /** The trigger of the unfixed model it was reversed from, in words. */
  from: string;
  kind: string;
  target: number;
  /** Size of the new trigger (the detector's measure), or null when none worked within the budget. */
  size: number | null;
  /** The largest size the detector would still flag (the scan's median over its threshold). */
  bound: number;
  /** Share of held-out source images the new trigger sends to the target on the fixed model. */
  rate: number | null;
  n: number;
  /** Small enough to be flagged and above the goal on held-out images: the backdoor survived. */
  survived: boolean;
}

export interface ReverseAgainRequest {
  fixed: OnnxModel;
  runtime: Runtime;
  /** Images the reversal runs on (the fix's fit images: never the held-out ones it is graded on). */
  fit: Dataset;
  heldOut: Dataset;
  /** The class each held-out image is scored against. */
  reference: Int32Array;
  triggers: readonly ReversedTrigger[];
  goal: number;
  seed: number;
  batchSize?: number;
  signal?: AbortSignal;
}

/** One per kind and target: the scan hands a trigger per flagged screen, the check asks each once. */
function distinct(triggers: readonly ReversedTrigger[]): ReversedTrigger[] {
  const seen = new Map<string, ReversedTrigger>();
  for (const t of triggers.filter(reReversible)) if (!seen.has(`${t.kind}:${t.target}`)) seen.set(`${t.kind}:${t.target}`, t);
  return [...seen.values()];
}

/** Whether the check has anything to ask: a trigger with the detector's size bound, and labelled fit images. */
export function canReverseAgain(triggers: readonly ReversedTrigger[], fit: Dataset | undefined): boolean {
  return !!fit?.labels && distinct(triggers).length > 0;
}

export async function reverseAgain(r: ReverseAgainRequest): Promise<ReversedAgain[]> {
  const asked = distinct(r.triggers);
  const bna = bnaStructure(r.fixed);
  const rows: ReversedAgain[] = [];
  for (const target of [...new Set(asked.map((t) => t.target))]) {
    const mine = asked.filter((t) => t.target === target);
    // On a BNA model an input the original network sends to t is answered by g_t: the attacker must get past g_t.
    const corrected = bna?.correctedLogits.get(target);
    const network = corrected ? networkOf(r.fixed, corrected, `${r.fixed.source} (corrected network for target ${target})`) : r.fixed;
    const again = await reReverse(network, r.runtime, r.fit, mine, { ...defaultReReverseOptions, seed: r.seed, signal: r.signal });
    const found = again.filter((a) => a.trigger).map((a) => a.trigger!);
    // Measured on the whole fixed model (a BNA model with its rule), on held-out images.
    const probe = FixProbe.build(r.heldOut, 'held-out images', found, r.reference);
    const rates = found.length ? probe.rates(await probe.read(r.fixed, r.runtime, { batchSize: r.batchSize, signal: r.signal })) : undefined;
    for (const a of again) {
      const label = a.trigger ? triggerLabel(a.trigger) : '';
      const m = rates?.triggers.find((x) => x.label === label && x.kind === a.from.kind);
      const rate = m ? m.rate : null;
      rows.push({
        from: triggerLabel(a.from), kind: a.from.kind, target, size: a.trigger ? a.size : null, bound: a.from.flaggedBelowSize!,
        rate, n: m?.n ?? 0, survived: a.stillFlagged && rate !== null && rate > r.goal,
      });
    }
  }
  return rows;
}

/** "patch trigger → 2 reversed again at size 0.41 ≤ 1.32 moves 85.2% of 270 held-out images". */
export function reversedAgainText(a: ReversedAgain): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  if (a.size === null) return `no ${a.kind} trigger → ${a.target} could be reversed again`;
  const size = `${a.kind} trigger → ${a.target} reversed again at size ${a.size.toFixed(2)} ${a.size <= a.bound ? '≤' : '>'} ${a.bound.toFixed(2)}`;
  return a.rate === null ? `${size} (not measured)` : `${size} moves ${pct(a.rate)} of ${a.n} held-out images`;
}
