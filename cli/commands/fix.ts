import { existsSync } from 'node:fs';
import { applyFix, assertNotInput, checkOutputPath, evaluate, purifiedWeights, writeFilesAtomic, type EvalResult } from '../../engine';
import { commonHelp, intOption, numberOption, parse, settingsFor, UsageError } from '../options';
import { openData, openModel, openRuntime, stage, startJob } from '../load';
import type { CommandResult } from '../main';

export const fixHelp = `Usage: backdoor-lens fix <model> --method M [--data <set>] --out FILE
Writes a purified ONNX model (same input and output names) through the fix registry. Never
overwrites its input. For a weights-only input (state_dict .pt, safetensors, BackdoorBench record)
it also writes the purified weights under their original key names beside it, as FILE with
.safetensors in place of .onnx. Prints clean accuracy before and after on --data, and the attack success
rate before and after when --triggered SET --target T (or --all-to-all) is given.

Fix options:
  --method M             the fix to apply
  --out FILE             where to write the purified model (required; never the input)
  --mode fixed|adaptive  fixed threshold u, or prune by rank until the reversed trigger fails (default adaptive)
  --u X                  threshold multiplier for fixed mode (default 3)
  --option key=value     a fix option (repeatable)
  --triggered SET        a triggered test set (true labels) to report ASR on
  --target T | --all-to-all  the attack for ASR
  --force                overwrite FILE if it exists (never the input)

${commonHelp}`;

const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(2)}%`);

export async function fixCommand(args: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(args, {
    method: { type: 'string' },
    out: { type: 'string' },
    mode: { type: 'string' },
    u: { type: 'string' },
    option: { type: 'string', multiple: true },
    triggered: { type: 'string' },
    target: { type: 'string' },
    'all-to-all': { type: 'boolean' },
    force: { type: 'boolean' },
  });
  if (values.help) return { stdout: fixHelp, exitCode: 0 };
  if (positionals.length !== 1) throw new UsageError('fix takes one model file');
  const method = values.method as string | undefined;
  const out = values.out as string | undefined;
  if (!method) throw new UsageError('fix needs --method M');
  if (!out) throw new UsageError('fix needs --out FILE (it never overwrites its input)');
  assertNotInput(out, [positionals[0]]);
  checkOutputPath(out);
  if (existsSync(out) && !values.force) throw new UsageError(`${out} exists; pass --force to replace it`);
  const weightsOut = `${out.replace(/\.onnx$/i, '')}.safetensors`;
  const mode = (values.mode as string | undefined) ?? 'adaptive';
  if (mode !== 'fixed' && mode !== 'adaptive') throw new UsageError(`--mode must be fixed or adaptive, got '${mode}'`);
  const s = settingsFor(positionals[0], values);
  const target = intOption(values, 'target') ?? (values['all-to-all'] ? undefined : s.config?.config.target);
  const allToAll = !!values['all-to-all'];
  const options: Record<string, unknown> = { ...s.config?.config.methodOptions?.[method] };
  for (const item of (values.option as string[] | undefined) ?? []) {
    const m = /^([A-Za-z0-9_]+)=(.*)$/.exec(item);
    if (!m) throw new UsageError(`--option must look like key=value, got '${item}'`);
    options[m[1]] = Number.isFinite(Number(m[2])) && m[2] !== '' ? Number(m[2]) : m[2];
  }
  const guard = startJob('fix', s);
  const model = await stage(guard, 'loading the model', () => openModel(positionals[0], s, guard));
  if (model.sourceKeys) {
    assertNotInput(weightsOut, [positionals[0]]);
    if (existsSync(weightsOut) && !values.force) throw new UsageError(`${weightsOut} exists; pass --force to replace it`);
  }
  const data = s.data ? openData(model, s.data, s) : undefined;
  const triggered = typeof values.triggered === 'string' ? openData(model, values.triggered, s) : undefined;
  if (triggered && target === undefined && !allToAll) throw new UsageError('--triggered needs --target T or --all-to-all');
  const runtime = openRuntime(s);
  try {
    const result = await stage(guard, `the ${method} fix`, () => applyFix(model, { method, runtime, data, dataKind: s.dataKind, mode, u: numberOption(values, 'u') ?? s.config?.config.threshold, seed: s.seed, batchSize: s.batchSize, options, signal: guard.signal }));
    const weights = model.sourceKeys ? purifiedWeights(model, result.model, { limits: s.limits }) : undefined;
    // Both files or neither; without --force, a file that appeared meanwhile (another fix) is never replaced.
    writeFilesAtomic([{ path: out, data: result.model.toBytes() }, ...(weights && 'bytes' in weights ? [{ path: weightsOut, data: weights.bytes }] : [])], { exclusive: !values.force });
    const weightsLine = !weights ? undefined : 'bytes' in weights ? `purified weights → ${weightsOut} (${weights.tensors} tensors under their original keys, ${weights.changed.length} changed)` : `no purified weights file: ${weights.reason}`;
    const measure = async (m: typeof model.onnx) => ({
      clean: data?.labels ? await evaluate(m, data, runtime, { batchSize: s.batchSize }) : undefined,
      triggered: triggered ? await evaluate(m, triggered, runtime, { batchSize: s.batchSize, target, allToAll }) : undefined,
    });
    const before = await stage(guard, 'measuring the input model', () => measure(model.onnx));
    const after = await stage(guard, 'measuring the fixed model', () => measure(result.model));
    const summary = (r: { clean?: EvalResult; triggered?: EvalResult }) => ({ accuracy: r.clean?.accuracy ?? null, asr: r.triggered?.asr ?? null, sourceAccuracy: r.triggered?.sourceAccuracy ?? null });
    const json = {
      model: model.path, out, method, mode, pruned: result.pruned, notes: result.notes, before: summary(before), after: summary(after), details: result.details ?? {},
      ...(weights ? { weights: 'bytes' in weights ? { path: weightsOut, tensors: weights.tensors, changed: weights.changed } : { path: null, reason: weights.reason } } : {}),
    };
    if (values.json) return { stdout: JSON.stringify(json, null, 2), exitCode: 0 };
    const lines = [`${method} (${mode}) on ${model.path} → ${out}`];
    if (result.pruned.length) lines.push(`  pruned ${result.pruned.length} neuron${result.pruned.length === 1 ? '' : 's'}: ${result.pruned.map((p) => `${p.layer}[${p.channel}]`).join(', ')}`);
    for (const n of result.notes) lines.push(`  ${n}`);
    if (weightsLine) lines.push(`  ${weightsLine}`);
    if (before.clean) lines.push(`  clean accuracy: ${pct(before.clean.accuracy)} → ${pct(after.clean!.accuracy)}`);
    if (before.triggered) lines.push(`  attack success rate: ${pct(before.triggered.asr)} → ${pct(after.triggered!.asr)} (source-class accuracy on triggered: ${pct(before.triggered.sourceAccuracy)} → ${pct(after.triggered!.sourceAccuracy)})`);
    return { stdout: lines.join('\n'), exitCode: 0 };
  } finally {
    guard.dispose();
    await runtime.dispose();
  }
}
