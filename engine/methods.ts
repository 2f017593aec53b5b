/**
 * The methods a user can name — the analyses `scan --methods` runs, the fixes `fix --method`
 * applies, STRIP that `eval --strip` runs — with the options each declares in its own file. A
 * neuron method is both an analysis and a fix: its fix takes the analysis's options and a few of its own.
 */
import { analyses } from './analyses/registry';
import { fixes } from './fixes/registry';
import { STRIP_OPTIONS } from './analyses/strip';
import { checkMethodOptions, optionsHelp, parseOptionItems, type DeclaredOptions, type MethodOptions, type OptionSpecs } from './method-options';

/** The commands that take --option, each with the methods it runs. */
export type OptionCommand = 'scan' | 'fix' | 'eval';

/** The analyses' options (scan), with each fix's own added (fix), and STRIP's (eval). */
function collect(): Record<OptionCommand, DeclaredOptions> {
  const scan = new Map<string, OptionSpecs>(analyses.map((a) => [a.id, a.options]));
  const fix = new Map<string, OptionSpecs>(scan);
  for (const f of fixes) fix.set(f.id, { ...fix.get(f.id), ...f.options });
  return { scan, fix, eval: new Map([['strip', STRIP_OPTIONS]]) };
}

const byCommand = collect();

/** Every declared option by method id: what backdoor-lens.json's "methodOptions" may hold. */
export const methodOptionSpecs: DeclaredOptions = new Map([...byCommand.fix, ...byCommand.eval]);

/**
 * `--option [method.]key=value` items as options by method, checked against what the command runs;
 * `own` is the method a bare key belongs to (fix's --method).
 */
export function parseMethodOptions(items: readonly string[], options: { command: OptionCommand; own?: string }): MethodOptions {
  return parseOptionItems(items, byCommand[options.command], options.own);
}

/** Checks options given as values ("methodOptions" in backdoor-lens.json or editor settings) against the declarations. */
export function checkOptions(options: MethodOptions | undefined, where: string): void {
  checkMethodOptions(options, methodOptionSpecs, where);
}

/** The options a command takes, as help lines: scan the analyses', fix each fix's with the trigger reversal's, eval STRIP's. */
export function methodOptionsHelp(command: OptionCommand): string {
  if (command !== 'fix') return optionsHelp(byCommand[command]);
  const detectors = analyses.filter((a) => a.detector && a.needs === 'labelled').map((a) => a.id);
  return optionsHelp(byCommand.fix, [...detectors, ...fixes.map((f) => f.id)]);
}
