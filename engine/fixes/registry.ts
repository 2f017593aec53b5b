/** Every fix `fix --method` can apply. */
import { bnaFix } from './bna';
import type { Fix } from './types';

export const fixes: readonly Fix[] = [
  bnaFix,
];

export function findFix(id: string): Fix | undefined {
  return fixes.find((f) => f.id === id);
}
