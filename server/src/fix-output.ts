/** The output names a fix may end with, claimed before it runs (engine/fixes/output-name.ts names them). */
import { outputLabel } from '../../engine';

/**
 * Every label the fix may write under: purified / corrected for a removal, <method>-reduced /
 * -failed otherwise; for 'auto', those of every fix it may keep (`known`: the fixes the server listed).
 */
export function possibleLabels(method: string, known: readonly string[]): string[] {
  const methods = method === 'auto' ? known.filter((m) => m !== 'auto') : [method];
  return [...new Set(methods.flatMap((m) => (['removed', 'reduced', 'failed'] as const).map((o) => outputLabel(m, o))))];
}
