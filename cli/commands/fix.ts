import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { AUTO, assertNotInput, checkOutputPath, mergeMethodOptions, methodOptionsHelp, parseMethodOptions, fixOutputs, outputLabel, reversedAgainText, writeFilesAtomic, type FixResult, type LoadedModel, type Session } from '../../engine';
import { commonHelp, intOption, numberOption, parse, settingsFor, UsageError } from '../options';
import { openSession, stage, startJob } from '../load';
import type { CommandResult } from '../main';

export const fixHelp = `Usage: backdoor-lens fix <model> --method M|auto [--data <set>] [--out FILE]
Repairs a model and measures the repair before writing it: the fix is fitted on part of --data
and graded on the rest (30% of each class, or --held-out SET): clean accuracy, and the attack
success of every reversed trigger on held-out images of its source classes (plus the true attack
success rate with --triggered). A fix that brings the estimate to ≤ --goal within --budget (at
the far end of the accuracy change's 95% interval; too few held-out images to show that make it
"reduced") is confirmed by a rescan of the fixed model. The outcome is removed, reduced or failed.

Exit code 0 only when the backdoor was removed; 1 otherwise (one line on stderr says why). The
output is never the input and never overwrites a file; without --out it is named for what the
fix showed: <name>.purified.onnx (removed; <name>.corrected.onnx for BNA), <name>.<method>-reduced.onnx
or <name>.<method>-failed.onnx. A fix that needs a trigger (bna, unlearn) writes nothing when none
was found. Weights-only inputs (state_dict .pt, safetensors, BackdoorBench) also get the fixed
weights under their original keys, as the same name with .safetensors.

Fix options:
  --method M             auto (every applicable fix, cheapest first, keeping the best), or one of
                         clp, bnp, ep, fp, bna, unlearn, anp
  --out FILE             where to write the fixed model (default: named for the outcome, beside the input)
  --held-out SET         measure on this set and fit on all of --data (default: hold out 30% of --data)
  --triggered SET        a triggered test set (true labels) to measure the true attack success rate on
  --target T | --all-to-all  the attack, for --triggered
  --goal P               attack success (percent) a removal must reach (default 2)
  --budget P             clean accuracy (points) a fix may cost (default 1.5)
  --no-rescan            do not confirm a removal with a rescan (the outcome then says so)
  --no-reversal          do not reverse triggers first: only --triggered can then show a removal
  --mode fixed|adaptive  pruning: the paper's threshold u, or by rank until the reversed trigger fails (default adaptive)
  --threshold X          threshold multiplier u for fixed mode (default 3; --u X is the old name)
  --option m.key=value   a method option (repeatable; listed below), e.g. pairs.imagesPerClass=20 for the
                         trigger reversal; a bare key=value is --method's own, e.g. layer=bn3 prunes that layer's flags
  --force                overwrite --out if it exists (never the input)

${commonHelp}

Method options (--option method.key=value; "methodOptions" in backdoor-lens.json):
${methodOptionsHelp('fix')}`;

const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);

function percentOption(values: Record<string, unknown>, name: string, max: number): number | undefined {
  const n = numberOption(values as never, name);
  if (n === undefined) return undefined;
  if (n < 0 || n > max) throw new UsageError(`--${name} must be between 0 and ${max}, got '${values[name]}'`);
  return n / 100;
}

export async function fixCommand(args: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(args, {
    method: { type: 'string' },
    out: { type: 'string' },
    mode: { type: 'string' },
    threshold: { type: 'string' },
    // The flag's name before it matched the config key; kept so existing scripts keep working.
    u: { type: 'string' },
    option: { type: 'string', multiple: true },
    'held-out': { type: 'string' },
    triggered: { type: 'string' },
    target: { type: 'string' },
    'all-to-all': { type: 'boolean' },
    goal: { type: 'string' },
    budget: { type: 'string' },
    'no-rescan': { type: 'boolean' },
    'no-reversal': { type: 'boolean' },
    force: { type: 'boolean' },
  });
  if (values.help) return { stdout: fixHelp, exitCode: 0 };
  if (positionals.length !== 1) throw new UsageError('fix takes one model file');
  const input = positionals[0];
  const method = values.method as string | undefined;
  if (!method) throw new UsageError('fix needs --method M (or --method auto)');
  const explicitOut = values.out as string | undefined;
  if (explicitOut) {
    assertNotInput(explicitOut, [input]);
    checkOutputPath(explicitOut);
    if (existsSync(explicitOut) && !values.force) throw new UsageError(`${explicitOut} exists; pass --force to replace it`);
  }
  const mode = (values.mode as string | undefined) ?? 'adaptive';
  if (mode !== 'fixed' && mode !== 'adaptive') throw new UsageError(`--mode must be fixed or adaptive, got '${mode}'`);
  const goal = percentOption(values, 'goal', 100);
  const budget = percentOption(values, 'budget', 100);
  const s = settingsFor(input, values);
  const target = intOption(values, 'target') ?? (values['all-to-all'] ? undefined : s.target);
  const allToAll = !!values['all-to-all'];
  // method.key=value sets any method's option (pairs.* for the trigger reversal first); a bare key=value is --method's own.
  const methodOptions = mergeMethodOptions(s.methodOptions, parseMethodOptions((values.option as string[] | undefined) ?? [], { command: 'fix', own: method === AUTO ? undefined : method }));
  const options = { ...methodOptions[method] };
  const guard = startJob('fix', s);
  const session = openSession({ ...s, threshold: numberOption(values, 'threshold') ?? numberOption(values, 'u') ?? s.threshold, methodOptions });
  try {
    const model = await stage(guard, 'loading the model', () => session.open(input, { interrupt: guard.interrupt }));
    // Checked before any work: the weights twin of an explicit --out must be free too.
    const weightsOut = explicitOut && model.sourceKeys ? `${explicitOut.replace(/\.onnx$/i, '')}.safetensors` : undefined;
    if (weightsOut) {
      assertNotInput(weightsOut, [input]);
      if (existsSync(weightsOut) && !values.force) throw new UsageError(`${weightsOut} exists; pass --force to replace it`);
    }
    const load = (path: string | undefined) => (typeof path === 'string' ? session.loadData(model, { path, labels: s.labels }) : undefined);
    const data = load(s.data);
    const heldOut = load(values['held-out'] as string | undefined);
    if (heldOut && !data) throw new UsageError('--held-out needs --data to fit on');
    const triggeredData = load(values.triggered as string | undefined);
    if (triggeredData && target === undefined && !allToAll) throw new UsageError('--triggered needs --target T or --all-to-all');
    const result = await stage(guard, `the ${method} fix`, () => session.fix(model, {
      method, data, mode, options, heldOut, goal, budget,
      reverse: !values['no-reversal'],
      ...(triggeredData ? { triggered: { data: triggeredData, target, allToAll } } : {}),
      // The CLI's rescan runs the default detectors, under backdoor-lens.json's time limit only.
      rescan: values['no-rescan'] ? false : { timeLimitMs: s.file?.config.timeLimitSeconds ? s.file.config.timeLimitSeconds * 1000 : undefined },
      outPath: explicitOut,
      signal: guard.signal,
    }));
    const written = write(session, result, input, explicitOut, !!values.force, model);
    const exitCode = result.outcome === 'removed' ? 0 : 1;
    const line = `backdoor-lens: ${result.headline}${written ? `; wrote ${written.paths.join(' and ')}` : ''}`;
    if (values.json) return { stdout: JSON.stringify(toJson(result, input, written), null, 2), exitCode, ...(exitCode ? { stderr: line } : {}) };
    return { stdout: describe(result, written?.paths).join('\n'), exitCode, ...(exitCode ? { stderr: line } : {}) };
  } finally {
    guard.dispose();
    await session.dispose();
  }
}

interface Written {
  paths: string[];
  weights?: { path: string; tensors: number; changed: string[] } | { path: null; reason: string };
}

/** Writes the fixed model (and weights) where the outcome says, or to --out; nothing when the fix produced no model. */
function write(session: Session, result: FixResult, input: string, explicitOut: string | undefined, force: boolean, model: LoadedModel): Written | undefined {
  if (!result.model) return undefined;
  const out = explicitOut ? { onnx: explicitOut, ...(model.sourceKeys ? { safetensors: `${explicitOut.replace(/\.onnx$/i, '')}.safetensors` } : {}) } : fixOutputs(input, outputLabel(result.method, result.outcome), !!model.sourceKeys, existsSync);
  const { files, weights } = session.fixFiles(model, result, out);
  if (weights?.path === null) result.notes.push(`no weights file: ${weights.reason}`);
  // Both files or neither; without --force, a file that appeared meanwhile (another fix) is never replaced.
  writeFilesAtomic(files, { exclusive: !force });
  return { paths: files.map((f) => f.path), ...(weights ? { weights } : {}) };
}

function describe(r: FixResult, written: string[] | undefined): string[] {
  const lines = [r.headline, ...(written ? [`  wrote ${written.join(' and ')}`] : [])];
  if (r.tried) {
    lines.push('  tried (cheapest first):');
    for (const t of r.tried) lines.push(`    ${t.chosen ? '*' : ' '} ${t.method.padEnd(8)} ${t.outcome.padEnd(8)} ASR ${pct(t.estimated).padStart(6)}  accuracy ${pct(t.accuracy).padStart(6)}  ${t.seconds.toFixed(0)} s  ${t.reason}`);
  }
  const m = r.measurement;
  if (m) {
    lines.push(`  measured on ${m.heldOut}:`);
    if (m.accuracy) {
      const p = m.accuracy.paired;
      const change = p ? `; ${p.lost} right → wrong, ${p.gained} wrong → right, change ±${(100 * p.margin).toFixed(1)} points at 95%` : '';
      lines.push(`    ${m.accuracy.agreement ? 'agreement with the original' : 'clean accuracy'}: ${pct(m.accuracy.before)} → ${pct(m.accuracy.after)} (${m.accuracy.n} images${change})`);
      const worst = m.accuracy.perClass.reduce<(typeof m.accuracy.perClass)[number] | undefined>((w, c) => (c.before - c.after > (w ? w.before - w.after : 0) ? c : w), undefined);
      if (worst) lines.push(`    largest drop of one class: class ${worst.label} ${pct(worst.before)} → ${pct(worst.after)} (${worst.n} images)`);
    }
    for (const t of m.triggers) lines.push(`    ${t.label}: ${pct(t.before)} → ${pct(t.after)} (${t.n} images)`);
    for (const u of m.unstamped) lines.push(`    ${u.label}: not measured (${u.reason})`);
    for (const a of m.reversedAgain ?? []) lines.push(`    on the fixed model: ${reversedAgainText(a)}${a.survived ? ' — the backdoor survived' : ''}`);
    if (m.trueAttack) lines.push(`    true trigger (${basename(m.trueAttack.source)}): attack success ${pct(m.trueAttack.before)} → ${pct(m.trueAttack.after)} (${m.trueAttack.n} images)`);
  }
  if (r.rescan) {
    const rep = r.rescan.report;
    lines.push(`  rescan of the fixed model: ${rep.verdict}${rep.targets.length ? `, target ${rep.targets.join(', ')}` : ''} (${rep.evidence.filter((e) => e.flagged).map((e) => e.summary).join('; ') || rep.methods.filter((x) => x.status === 'ran').map((x) => x.method).join(', ')})`);
  }
  if (r.pruned.length) lines.push(`  pruned ${r.pruned.length} neuron${r.pruned.length === 1 ? '' : 's'}: ${r.pruned.map((p) => `${p.layer}[${p.channel}]`).join(', ')}`);
  for (const n of r.notes) lines.push(`  ${n}`);
  return lines;
}

function toJson(r: FixResult, input: string, written: Written | undefined) {
  return {
    model: input, method: r.method, outcome: r.outcome, headline: r.headline, written: written?.paths ?? [], ...(written?.weights ? { weights: written.weights } : {}), ...(r.nothing ? { nothing: r.nothing } : {}),
    measurement: r.measurement ?? null, tried: r.tried ?? null,
    rescan: r.rescan ? { verdict: r.rescan.report.verdict, targets: r.rescan.report.targets, evidence: r.rescan.report.evidence, repair: r.rescan.report.repair ?? null } : null,
    pruned: r.pruned, notes: r.notes, details: r.details ?? {},
  };
}
