/** Every fix `fix --method` can apply, cheapest first (the order `auto` tries them in). */
import { anp } from '../analyses/methods/anp';
import { bnp } from '../analyses/methods/bnp';
import { clp } from '../analyses/methods/clp';
import { ep } from '../analyses/methods/ep';
import { fp } from '../analyses/methods/fp';
import { advUnlearnFix } from './adv-unlearn';
import { bnaFix } from './bna';
import { neuronPruningFix } from './neuron-fix';
import type { Fix } from './types';
import { unlearnFix } from './unlearn';

/** `fix --method auto`: every applicable fix, cheapest first, keeping the best. */
export const AUTO = 'auto';

export const fixes: readonly Fix[] = [
  neuronPruningFix(clp, 1),
  neuronPruningFix(bnp, 2),
  neuronPruningFix(ep, 3),
  neuronPruningFix(fp, 5),
  bnaFix,
  unlearnFix,
  advUnlearnFix,
  { ...neuronPruningFix(anp, 300), notInAuto: 'ANP optimises its masks for minutes even on the interactive schedule; ask for it with --method anp' },
].sort((a, b) => a.cost - b.cost);

export function findFix(id: string): Fix | undefined {
  return fixes.find((f) => f.id === id);
}
