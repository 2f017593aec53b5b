/**
 * The methods a user can name — the analyses `scan --methods` runs and the fixes `fix --method`
 * applies — with the options each declares in its own file. A neuron method is both: its fix
 * takes the analysis's options and a few of its own.
 */
import { analyses } from './analyses/registry';
import { fixes } from './fixes/registry';
import { checkMethodOptions, optionsHelp, parseOptionItems, type DeclaredOptions, type MethodOptions, type OptionSpecs } from './method-options';

function collect(): DeclaredOptions {
  const declared = new Map<string, OptionSpecs>();
  for (const a of analyses) declared.set(a.id, { ...a.options });
  for (const f of fixes) declared.set(f.id, { ...declared.get(f.id), ...f.options });
  return declared;
}

/** Declared options by method id, in registry order (analyses, then fixes that are no analysis). */
export const methodOptionSpecs: DeclaredOptions = collect();

/** `--option [method.]key=value` items as options by method; `ownMethod` is the method a bare key belongs to (fix's --method). */
export function parseMethodOptions(items: readonly string[], ownMethod?: string): MethodOptions {
  return parseOptionItems(items, methodOptionSpecs, ownMethod);
}

/** Checks options given as values ("methodOptions" in backdoor-lens.json or editor settings) against the declarations. */
export function checkOptions(options: MethodOptions | undefined, where: string): void {
  checkMethodOptions(options, methodOptionSpecs, where);
}

/** The options `scan` takes (the analyses' own) or `fix` takes (each fix's, with the trigger reversal's), as help lines. */
export function methodOptionsHelp(command: 'scan' | 'fix'): string {
  if (command === 'scan') return optionsHelp(new Map(analyses.map((a) => [a.id, a.options])));
  const detectors = analyses.filter((a) => a.detector && a.needs === 'labelled').map((a) => a.id);
  return optionsHelp(methodOptionSpecs, [...detectors, ...fixes.map((f) => f.id)]);
}
