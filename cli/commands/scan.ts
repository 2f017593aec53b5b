import { mkdirSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { Eta, etaText, formatRefusedReport, formatReport, mergeMethodOptions, methodOptionsHelp, parseMethodOptions, refusedScanReport, toSarif, UnsafeCheckpointError, writeFileAtomic, type LoadedModel, type ScanProgress, type ScanReport } from '../../engine';
import { commonHelp, intOption, numberOption, parse, settingsFor, UsageError } from '../options';
import { openSession, stage, startJob } from '../load';
import { exitCodeHelp, exitCodes, inconclusiveExitCode } from '../exit-codes';
import type { CommandResult } from '../main';

export const scanHelp = `Usage: backdoor-lens scan <model> [--data <set>] [--methods a,b,...] [--json | --sarif] [--out FILE]
Runs the registered analyses that fit the data given and reports findings.
${exitCodeHelp}

Scan options:
  --methods a,b          analyses to run (default: all that fit the data)
  --threshold X          threshold multiplier u in mean ± u·std for neuron methods (default 3; --u X is the old name)
  --option m.key=value   a method option, e.g. --option anp.iterations=500 (repeatable; listed below)
  --sarif                SARIF 2.1.0 output (for GitHub code scanning)
  --out FILE             write the JSON/SARIF report to FILE (text summary still printed)
  --artifacts DIR        where to write trigger images (default: beside --out)

${commonHelp}

Method options (--option method.key=value; "methodOptions" in backdoor-lens.json):
${methodOptionsHelp('scan')}`;

export async function scanCommand(args: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(args, {
    methods: { type: 'string' },
    threshold: { type: 'string' },
    // The flag's name before it matched the config key; kept so existing scripts keep working.
    u: { type: 'string' },
    option: { type: 'string', multiple: true },
    sarif: { type: 'boolean' },
    out: { type: 'string' },
    artifacts: { type: 'string' },
  });
  if (values.help) return { stdout: scanHelp, exitCode: 0 };
  if (positionals.length !== 1) throw new UsageError('scan takes one model file');
  if (values.json && values.sarif) throw new UsageError('give --json or --sarif, not both');
  const s = settingsFor(positionals[0], values);
  const methods = typeof values.methods === 'string' ? values.methods.split(',').map((m) => m.trim()).filter(Boolean) : s.methods;
  const threshold = numberOption(values, 'threshold') ?? numberOption(values, 'u') ?? s.threshold;
  if (threshold !== undefined && threshold <= 0) throw new UsageError('--threshold must be positive');
  const guard = startJob('scan', s);
  const session = openSession({ ...s, methods, threshold, methodOptions: mergeMethodOptions(s.methodOptions, parseMethodOptions((values.option as string[] | undefined) ?? [], { command: 'scan' })) });
  let model: LoadedModel;
  try {
    model = await stage(guard, 'loading the model', () => session.open(positionals[0], { interrupt: guard.interrupt }));
  } catch (e) {
    guard.dispose();
    await session.dispose();
    // A refused checkpoint is itself the result: report why, in the format asked for.
    if (e instanceof UnsafeCheckpointError) return refusedOutput(refusedScanReport(e, s.seed), values, e.dangerous ? 1 : 3);
    throw e;
  }
  try {
    const data = s.data ? await stage(guard, 'loading the data', () => session.loadData(model, { path: s.data!, labels: s.labels })) : undefined;
    const { report, images, stopped } = await session.scan(model, {
      data, guard, partialResults: true,
      onProgress: process.stderr.isTTY ? progressLine() : undefined,
    });
    if (process.stderr.isTTY) process.stderr.write('\r'.padEnd(100) + '\r');
    const out = values.out as string | undefined;
    const artifactsDir = (values.artifacts as string | undefined) ?? (out ? join(dirname(out), `${basename(out).replace(/\.[^.]+$/, '')}-artifacts`) : undefined);
    if (artifactsDir && images.length) {
      mkdirSync(artifactsDir, { recursive: true });
      const base = out ? dirname(resolve(out)) : process.cwd();
      for (const img of images) {
        const file = join(artifactsDir, img.name);
        writeFileAtomic(file, img.png);
        report.artifacts.push({ kind: img.kind, path: relative(base, resolve(file)), ...(img.label !== undefined ? { label: img.label } : {}), ...(img.pair ? { pair: img.pair } : {}) });
      }
    }
    const serialised = values.sarif ? JSON.stringify(toSarif(report, out ? dirname(resolve(out)) : process.cwd()), null, 2) : JSON.stringify(report, null, 2);
    let stdout: string;
    if (out) {
      writeFileAtomic(out, serialised + '\n');
      stdout = formatReport(report) + `\nReport written to ${out}.`;
    } else stdout = values.json || values.sarif ? serialised : formatReport(report);
    // Stopped at a limit: the partial report above, the stop on stderr, and the limit's exit code (1 if a backdoor was already found).
    if (stopped) return { stdout, stderr: `backdoor-lens: ${stopped.userMessage}`, exitCode: exitCodeFor(report) === 1 ? 1 : exitCodes.limit };
    return { stdout, exitCode: exitCodeFor(report) };
  } finally {
    guard.dispose();
    await session.dispose();
  }
}

function refusedOutput(report: ScanReport, values: Record<string, unknown>, exitCode: number): CommandResult {
  const out = values.out as string | undefined;
  const serialised = values.sarif ? JSON.stringify(toSarif(report, out ? dirname(resolve(out)) : process.cwd()), null, 2) : JSON.stringify(report, null, 2);
  const text = formatRefusedReport(report);
  if (out) {
    writeFileAtomic(out, serialised + '\n');
    return { stdout: `${text}\nReport written to ${out}.`, exitCode };
  }
  return { stdout: values.json || values.sarif ? serialised : text, exitCode };
}

export function exitCodeFor(report: ScanReport): number {
  if (report.verdict === 'backdoored' || report.findings.some((f) => f.severity === 'error')) return 1;
  return report.verdict === 'inconclusive' ? inconclusiveExitCode : 0;
}


/** The terminal's one progress line: percent, the time left (before the stage, so a long stage text cannot cut it off), the stage. */
function progressLine(): (p: ScanProgress) => void {
  const eta = new Eta();
  return (p) => {
    const left = etaText(eta.update(p.fraction));
    process.stderr.write(`\r${(100 * p.fraction).toFixed(0).padStart(3)}%${left ? ` (${left})` : ''} ${p.stage}`.padEnd(72).slice(0, 100));
  };
}
