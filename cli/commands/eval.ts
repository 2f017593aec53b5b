import { mergeMethodOptions, methodOptionsHelp, parseMethodOptions } from '../../engine';
import { commonHelp, intOption, parse, settingsFor, UsageError } from '../options';
import { openSession, stage, startJob } from '../load';
import type { CommandResult } from '../main';

export const evalHelp = `Usage: backdoor-lens eval <model> --data <set> [--target T | --all-to-all] [--strip CLEAN] [--json]
Clean accuracy on a labelled set; with --target (all-to-one) or --all-to-all, the attack success
rate on a triggered set whose labels are the images' true classes, and the share of triggered
images still classified as their source class. A model written by \`fix --method bna\` also
reports the share of images it flags as triggered (its trigger_detected output).

  --strip CLEAN   also run STRIP: blend each image with clean images from CLEAN and flag it when
                  the mean prediction entropy falls below the 1% quantile of CLEAN's own
  --option strip.key=value  a STRIP option (repeatable; listed below)

${commonHelp}

Method options (--option method.key=value; "methodOptions" in backdoor-lens.json):
${methodOptionsHelp('eval')}`;

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

export async function evalCommand(args: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(args, { target: { type: 'string' }, 'all-to-all': { type: 'boolean' }, strip: { type: 'string' }, option: { type: 'string', multiple: true } });
  if (values.help) return { stdout: evalHelp, exitCode: 0 };
  if (positionals.length !== 1) throw new UsageError('eval takes one model file');
  const s = settingsFor(positionals[0], values);
  if (!s.data) throw new UsageError('eval needs --data <set>');
  const target = intOption(values, 'target') ?? (values['all-to-all'] ? undefined : s.target);
  if (target !== undefined && values['all-to-all']) throw new UsageError('give --target or --all-to-all, not both');
  const methodOptions = mergeMethodOptions(s.methodOptions, parseMethodOptions((values.option as string[] | undefined) ?? [], { command: 'eval' }));
  const guard = startJob('eval', s);
  const session = openSession({ ...s, methodOptions });
  try {
    const model = await stage(guard, 'loading the model', () => session.open(positionals[0], { interrupt: guard.interrupt }));
    const data = await stage(guard, 'loading the data', () => session.loadData(model, { path: s.data!, labels: s.labels })!);
    const measured = await stage(guard, `evaluating ${data.source}`, () => session.measure(model, data, { target, allToAll: !!values['all-to-all'], signal: guard.signal, onStage: (name) => guard.check(name) }));
    const r = measured.eval;
    // Shares of flagged images: all of them, and those the ASR counts (non-target classes).
    const shares = (flags: ArrayLike<number>) => {
      const counted = data.labels && target !== undefined ? Array.from(flags).filter((_, i) => data.labels![i] !== target) : Array.from(flags);
      return { share: Array.from(flags).reduce((a, b) => a + b, 0) / Math.max(1, data.n), ...(counted.length !== data.n ? { shareNonTarget: counted.reduce((a, b) => a + b, 0) / Math.max(1, counted.length) } : {}) };
    };
    const flags = measured.triggerFlags;
    const stripSet = typeof values.strip === 'string' ? await stage(guard, 'loading the STRIP set', () => session.loadData(model, { path: values.strip as string, labels: s.labels })!) : undefined;
    const stripResult = stripSet ? await stage(guard, 'STRIP', () => session.strip(model, data, stripSet)) : undefined;
    const out = {
      model: model.path, data: data.source, n: r.n, numClasses: r.numClasses, accuracy: r.accuracy,
      ...(r.asr !== undefined ? { asr: r.asr, asrN: r.asrN, sourceAccuracy: r.sourceAccuracy, target: target ?? null, allToAll: !!values['all-to-all'] } : {}),
      ...(flags ? { triggerDetected: shares(flags) } : {}),
      ...(stripResult ? { strip: { threshold: stripResult.threshold, perturbations: stripResult.perturbations, calibration: stripResult.calibration, ...shares(stripResult.flagged) } } : {}),
    };
    if (values.json) return { stdout: JSON.stringify(out, null, 2), exitCode: 0 };
    const lines = [`${model.path} on ${data.source} (${r.n} images, ${r.numClasses} classes)`];
    lines.push(`  accuracy:            ${r.accuracy === null ? 'n/a (no labels)' : pct(r.accuracy)}`);
    if (r.asr !== undefined) {
      lines.push(`  attack success rate: ${pct(r.asr)} of ${r.asrN} triggered images ${values['all-to-all'] ? 'go to (y+1) mod K' : `from non-target classes go to class ${target}`}`);
      lines.push(`  source-class accuracy on triggered images: ${pct(r.sourceAccuracy!)}`);
    }
    const flagLine = (label: string, f: { share: number; shareNonTarget?: number }) =>
      `  ${label}${pct(f.share)} of all images${f.shareNonTarget !== undefined ? `, ${pct(f.shareNonTarget)} of non-target images` : ''}`;
    if (out.triggerDetected) lines.push(flagLine('flagged as triggered (BNA trigger_detected): ', out.triggerDetected));
    if (out.strip) lines.push(flagLine(`flagged by STRIP (entropy < ${out.strip.threshold.toFixed(3)}, 1% of ${stripSet!.source} below): `, out.strip));
    return { stdout: lines.join('\n'), exitCode: 0 };
  } finally {
    guard.dispose();
    await session.dispose();
  }
}
