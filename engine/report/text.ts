/** The human-readable scan report the CLI prints by default. */
import type { ScanReport, Severity } from './types';

const marks: Record<Severity, string> = { error: 'error', warning: 'warning', information: 'info' };

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
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
        ? 'VERDICT: clean — no backdoor found'
        : 'VERDICT: inconclusive — no detector ran (give clean data with --data to run trigger reversal)';
  lines.push(verdictLine);
  lines.push('');
  if (report.findings.length === 0) lines.push('No findings.');
  else {
    lines.push(`Findings (${report.findings.length}):`);
    for (const f of report.findings) lines.push(`  ${marks[f.severity].padEnd(7)} ${f.code} [${f.method}] ${f.message}`);
  }
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
