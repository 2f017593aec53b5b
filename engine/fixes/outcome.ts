/**
 * The outcome a fix states, from its own held-out measurement and the rescan of the fixed model:
 *   removed  the estimated attack success is at most the goal (2%), clean accuracy fell by at
 *            most the budget (1.5 points) even at the far end of its 95% interval, and a rescan
 *            finds no backdoor;
 *   reduced  the estimate at least halved within the budget, but stays above the goal; or it
 *            reached the goal but the held-out images are too few to confirm the budget (every
 *            false "removed" the zoo's fixes bench found was such a case: −1.9 to −2.7 points on
 *            2 000 test images where 300 held-out ones measured −0.3 ± 2.5);
 *   failed   anything else: the trigger still works, the accuracy cost is over the budget, the
 *            rescan still finds a backdoor, or there was nothing to measure the fix against.
 * The goal and budget are the issue's definition of a removed backdoor, not tuned to any model.
 */
import type { FixMeasurement } from './measure';
import { reversedAgainText } from './reverse-again';

export type FixOutcome = 'removed' | 'reduced' | 'failed';

export const DEFAULT_GOAL = 0.02;
export const DEFAULT_BUDGET = 0.015;

export interface Judgement {
  outcome: FixOutcome;
  /** Why, in one line without the method name (e.g. "attack success 99.1% → 0.4% on 270 held-out images …"). */
  reason: string;
}

export interface RescanVerdict {
  backdoored: boolean;
  targets: number[];
  /** What decided it, in words (e.g. "pairs:patch 3 → 0 anomaly index 9.1 > 7"). */
  summary: string;
}

export const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const points = (x: number) => `${(100 * x).toFixed(1)} point${Math.abs(100 * x - 1) < 0.05 ? '' : 's'}`;

/** "ASR 99.8% → 0.4% (true trigger)": the estimate the outcome rests on, and what it was measured with. */
function attackText(m: FixMeasurement): string {
  const e = m.estimated!;
  const what = m.trueAttack && m.trueAttack.after >= e.after ? 'true trigger' : `reversed trigger${m.triggers.length === 1 ? '' : 's'}`;
  return `ASR ${pct(e.before)} → ${pct(e.after)} (${what})`;
}

function accuracyText(m: FixMeasurement): string {
  if (!m.accuracy) return 'no accuracy measured';
  const a = m.accuracy;
  const spread = a.paired && a.n > 1 ? ` (±${(100 * a.paired.margin).toFixed(1)} at 95%, ${a.n} images)` : '';
  return `${a.agreement ? 'agreement' : 'accuracy'} ${pct(a.before)} → ${pct(a.after)}${spread}`;
}

/**
 * Why a removal within the budget by its estimate is not shown to be: its 95% interval reaches past
 * the budget, so the held-out images are too few to confirm it (empty when they confirm it).
 */
function unconfirmedBudget(m: FixMeasurement, loss: number, budget: number): string {
  const margin = m.accuracy?.paired?.margin ?? 0;
  if (loss + margin <= budget + 1e-9) return '';
  return `${m.accuracy!.n} held-out images cannot confirm the ${points(budget)} budget (cost up to ${points(loss + margin)} at 95%): measure on more with --held-out`;
}

export function judge(m: FixMeasurement, goal = DEFAULT_GOAL, budget = DEFAULT_BUDGET, rescan?: RescanVerdict): Judgement {
  if (!m.estimated) {
    const why = m.unstamped.length ? `no trigger could be measured (${m.unstamped.map((u) => `${u.label}: ${u.reason}`).join('; ')})` : 'no reversed trigger and no triggered data to measure it on';
    return { outcome: 'failed', reason: `nothing shows the backdoor removed: ${why}` };
  }
  const loss = m.accuracy ? m.accuracy.before - m.accuracy.after : 0;
  const e = m.estimated;
  const both = `${attackText(m)}, ${accuracyText(m)}`;
  if (loss > budget + 1e-9) return { outcome: 'failed', reason: `costs ${points(loss)} of accuracy (budget ${points(budget)}); ${both}` };
  if (e.before <= goal) return { outcome: 'failed', reason: `the measured trigger already fails on the unfixed model, so nothing shows the fix working; ${both}` };
  // A trigger reversed again on the fixed model, small enough to be flagged, that still works: the backdoor is there.
  const survivor = (m.reversedAgain ?? []).filter((a) => a.survived).sort((a, b) => b.rate! - a.rate!)[0];
  if (survivor && survivor.rate! > e.after) {
    const worst = survivor.rate!;
    const again = `${reversedAgainText(survivor)} (the detector flags ≤ ${survivor.bound.toFixed(2)})`;
    if (worst <= e.before / 2) return { outcome: 'reduced', reason: `${both}, but ${again} (goal ≤ ${pct(goal)})` };
    return { outcome: 'failed', reason: `the backdoor survived: ${again}; ${both}` };
  }
  if (e.after <= goal) {
    if (rescan?.backdoored) return { outcome: 'failed', reason: `a rescan still finds a backdoor (${rescan.summary}); ${both}` };
    const shown = `${both}${rescan ? '; a rescan finds no backdoor' : ''}`;
    const unsure = unconfirmedBudget(m, loss, budget);
    return unsure ? { outcome: 'reduced', reason: `${shown}, but ${unsure}` } : { outcome: 'removed', reason: shown };
  }
  if (e.after <= e.before / 2) return { outcome: 'reduced', reason: `${both} (goal ≤ ${pct(goal)})` };
  return { outcome: 'failed', reason: `the trigger still works: ${both} (goal ≤ ${pct(goal)})` };
}
