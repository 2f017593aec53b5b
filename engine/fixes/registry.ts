/** Every fix `fix --method` can apply. */
import { anp } from '../analyses/anp';
import { bnp } from '../analyses/bnp';
import { clp } from '../analyses/clp';
import { ep } from '../analyses/ep';
import { fp } from '../analyses/fp';
import { bnaFix } from './bna';
import { neuronPruningFix } from './neuron-fix';
import type { Fix } from './types';

export const fixes: readonly Fix[] = [
  neuronPruningFix(clp),
  neuronPruningFix(bnp),
  neuronPruningFix(ep),
  neuronPruningFix(fp),
  neuronPruningFix(anp),
  bnaFix,
];

export function findFix(id: string): Fix | undefined {
  return fixes.find((f) => f.id === id);
}
