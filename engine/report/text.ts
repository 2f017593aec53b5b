/** The human-readable scan report the CLI prints by default. */
import type { ScanReport, Severity } from './types';

const marks: Record<Severity, string> = { error: 'error', warning: 'warning', information: 'info' };

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Why no detector reached a verdict: the ops they could not handle, their failures, or no data. */
function inconclusiveWhy(report: ScanReport): string {
  const failed = report.methods.filter((r) => r.status === 'failed');
  const ops = [...new Set(failed.flatMap((r) => [...(r.reason ?? '').matchAll(/cannot differentiate op (\w+)/g)].map((m) => m[1])))];
  if (ops.length) return `no detector reached a verdict: the model has ops the detectors cannot handle (${ops.join(', ')}; ${failed.map((r) => r.method).join(', ')} failed)`;
  if (failed.length) return `no detector reached a verdict (${failed.map((r) => r.method).join(', ')} failed; see the findings)`;
  if (report.methods.some((r) => r.status === 'stopped')) return 'the scan stopped before a detector reached a verdict';
  return 'no detector ran (give clean data with --data to run trigger reversal)';
}

export function formatReport(report: ScanReport): string {
  const lines: string[] = [];
  const m = report.model;
  lines.push(`Backdoor Lens ${report.tool.version} — ${m.path}`);
  lines.push(`  model: ${m.format}${m.architecture ? ` (${m.architecture})` : ''}, input ${m.input.name} [${m.input.dims.join(', ')}], ${m.numClasses ?? '?'} classes, BatchNorm ${m.bn}`);
  for (const note of m.notes ?? []) lines.push(`         ${note}`);
  if (report.data) lines.push(`  data:  ${report.data.path} — ${report.data.n} images, ${report.data.labelled ? 'labelled' : 'unlabelled'}, ${report.data.kind}`);
  else lines.push('  data:  none (data-free checks only)');
  lines.push('');
  const verdictLine =
    report.verdict === 'backdoored'
      ? `VERDICT: BACKDOORED — target class${report.targets.length === 1 ? '' : 'es'} ${report.targets.join(', ')}${report.attackType ? ` (${report.attackType})` : ''}`
      : report.verdict === 'clean'
        ? report.data
          ? 'VERDICT: clean — no backdoor found'
          : 'VERDICT: clean — no backdoor found without data; data-free checks miss most backdoors: scan with --data'
        : `VERDICT: inconclusive — ${inconclusiveWhy(report)}`;
  lines.push(verdictLine);
  lines.push('');
  if (report.findings.length === 0) lines.push('No findings.');
  else {
    lines.push(`Findings (${report.findings.length}):`);
    for (const f of report.findings) lines.push(`  ${marks[f.severity].padEnd(7)} ${f.code} [${f.method}] ${f.message.replace(/\n/g, `\n${' '.repeat(10)}`)}`);
  }
  if (report.repair) lines.push('', ...repairLines(report.repair));
  lines.push('');
  lines.push('Methods:');
  if (report.methods.length === 0) lines.push('  (none)');
  for (const r of report.methods) {
    const extra = r.status === 'ran' ? seconds(r.ms) + (r.gradientEvaluations !== undefined ? `, ${r.gradientEvaluations} gradient evaluations` : '') : r.reason ?? '';
    lines.push(`  ${r.method.padEnd(8)} ${r.status.padEnd(8)} ${extra}`);
    for (const note of r.notes ?? []) lines.push(`           note: ${note}`);
  }
  lines.push(`Total ${seconds(report.timings.total ?? 0)}.`);
  return lines.join('\n');
}

const pctOrNa = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);

/** The fix record beside this scan's own measurement of it: before the fix, after it, now. */
function repairLines(r: NonNullable<ScanReport['repair']>): string[] {
  const lines = [`Repair: written by the ${r.method} fix (outcome ${r.outcome}; goal ≤ ${pctOrNa(r.goal)}, budget ${(100 * r.budget).toFixed(1)} points)${r.bna ? `; judged ${r.bna.judged}` : ''}`];
  lines.push(`  recorded on ${r.recordedOn}`, `  measured now on ${r.measuredOn}`);
  const w = Math.max(8, ...r.rows.map((x) => x.what.length));
  lines.push(`  ${''.padEnd(w)}  before   fixed    now`);
  for (const x of r.rows) lines.push(`  ${x.what.padEnd(w)}  ${pctOrNa(x.before).padStart(6)}   ${pctOrNa(x.fixed).padStart(6)}   ${pctOrNa(x.now).padStart(6)}${x.n ? `  (${x.n} images)` : ''}`);
  return lines;
}
