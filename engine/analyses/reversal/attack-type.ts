/** Names the attack a set of detected (source, target) pairs describes. */
import type { AttackType } from '../../report/types';

export interface Pair {
  source: number;
  target: number;
}

/**
 * all-to-one: one target reached from two or more sources.
 * all-to-all: a permutation-like set: two or more targets, no target with more than two sources,
 *   and few conflicts with a one-to-one map (extra sources of a target plus extra targets of a
 *   source: at most two — what one spurious pair adds —, or a quarter of the pairs). BNA's paper shows its detector adding one
 *   spurious source for a target under an all-to-all BadNet attack, hence the tolerance.
 * other: anything else (a single source-specific pair, several all-to-one targets, …).
 * null: no pairs.
 */
export function classifyAttack(pairs: readonly Pair[]): AttackType | null {
  if (pairs.length === 0) return null;
  const sourcesOf = new Map<number, Set<number>>();
  const targetsOf = new Map<number, Set<number>>();
  for (const { source, target } of pairs) {
    (sourcesOf.get(target) ?? sourcesOf.set(target, new Set()).get(target)!).add(source);
    (targetsOf.get(source) ?? targetsOf.set(source, new Set()).get(source)!).add(target);
  }
  if (sourcesOf.size === 1) return [...sourcesOf.values()][0].size >= 2 ? 'all-to-one' : 'other';
  const extra = (m: Map<number, Set<number>>) => [...m.values()].reduce((n, s) => n + s.size - 1, 0);
  const conflicts = extra(sourcesOf) + extra(targetsOf);
  const crowded = [...sourcesOf.values()].some((s) => s.size > 2);
  if (!crowded && conflicts <= Math.max(2, Math.floor(pairs.length / 4))) return 'all-to-all';
  return 'other';
}
