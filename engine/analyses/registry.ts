/** Every analysis `scan --methods` can run, in the order a scan runs them. */
import { anp } from './anp';
import { bnp } from './bnp';
import { clp } from './clp';
import { ep } from './ep';
import { fp } from './fp';
import { mmbdAnalysis } from './mmbd';
import { ncAnalysis } from './nc';
import { pairsAnalysis } from './pairs';
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
