/**
 * The fixture's true BadNets trigger as a ReversedTrigger (3×3 patch of 1.0 at rows/cols 24..26
 * in [0,1] input space, target 0), standing in for the trigger-reversal hand-off in tests.
 */
import type { AnalysisOutput } from '../../engine/analyses/types';
import type { ReversedTrigger } from '../../engine/analyses/reversal/trigger';

export function badnetsTrigger(): ReversedTrigger {
  const mask = new Float32Array(28 * 28);
  const pattern = new Float32Array(28 * 28);
  for (let r = 24; r <= 26; r++) for (let c = 24; c <= 26; c++) (mask[r * 28 + c] = 1), (pattern[r * 28 + c] = 1);
  return { kind: 'patch', target: 0, sources: [1, 2, 3, 4, 5, 6, 7, 8, 9], mask, pattern, range: { min: [0], max: [1] } };
}

/** A scan's outputs as a fix receives them, with the trigger reversed by 'pairs'. */
export function previousWithTrigger(trigger = badnetsTrigger()): ReadonlyMap<string, AnalysisOutput> {
  return new Map([['pairs', { state: { triggers: [trigger] } }]]);
}
