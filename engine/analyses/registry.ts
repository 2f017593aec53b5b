/** Every analysis `scan --methods` can run, in the order a scan runs them. */
import { anp } from './methods/anp';
import { bnp } from './methods/bnp';
import { clp } from './methods/clp';
import { ep } from './methods/ep';
import { fp } from './methods/fp';
import { mmbdAnalysis } from './methods/mmbd';
import { ncAnalysis } from './methods/nc';
import { pairsAnalysis } from './methods/pairs';
import type { Analysis } from './types';

// Cheap data-free and statistics checks first, so a time limit still leaves their findings.
export const analyses: readonly Analysis[] = [
  clp,
  bnp,
  ep,
  pairsAnalysis,
  ncAnalysis,
  mmbdAnalysis,
  fp,
  anp,
];

export function findAnalysis(id: string): Analysis | undefined {
  return analyses.find((a) => a.id === id);
}
