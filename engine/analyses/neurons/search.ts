/**
 * Searches along a pruning order: how many of the first neurons can be pruned while a condition
 * holds. Each probe is a full evaluation, so instead of trying every count the search gallops
 * (1, 2, 4, …) to bracket the change and then bisects, assuming the condition, once broken,
 * stays broken as more neurons go (monotone). That costs about 2·log2(n) evaluations.
 */

export interface PrefixSearch {
  /** The largest count k ≤ n for which holds(k) was true (0 if none was tried true). */
  count: number;
  /** Counts tried, in order, with their outcomes. */
  probes: { k: number; holds: boolean }[];
}

/** Largest k in [0, n] with holds(k), given holds(0) is true and holds is monotone decreasing in k. */
export async function largestHolding(n: number, holds: (k: number) => Promise<boolean>): Promise<PrefixSearch> {
  const probes: { k: number; holds: boolean }[] = [];
  const probe = async (k: number) => {
    const h = await holds(k);
    probes.push({ k, holds: h });
    return h;
  };
  let good = 0, bad = n + 1;
  for (let k = 1; k <= n; k = Math.min(n, k * 2)) {
    if (await probe(k)) good = k;
    else {
      bad = k;
      break;
    }
    if (k === n) break;
  }
  while (bad - good > 1 && bad <= n) {
    const mid = (good + bad) >> 1;
    if (await probe(mid)) good = mid;
    else bad = mid;
  }
  return { count: good, probes };
}
