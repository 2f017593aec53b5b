/** Every analysis `scan --methods` can run, in the order a scan runs them. */
import { ncAnalysis } from './nc';
import { pairsAnalysis } from './pairs';
import type { Analysis } from './types';

export const analyses: readonly Analysis[] = [
  pairsAnalysis,
  ncAnalysis,
];

export function findAnalysis(id: string): Analysis | undefined {
  return analyses.find((a) => a.id === id);
}
