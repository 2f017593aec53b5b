/**
 * The scan report of a checkpoint the reader refused (UnsafeCheckpointError): no model was built,
 * so no analysis ran, but the findings that explain the refusal are reported like any others.
 */
import type { UnsafeCheckpointError } from './formats/unsafe';
import { REPORT_VERSION, type ScanReport } from './report/types';
import { sortFindings } from './scan';
import { TOOL_VERSION } from './version';

export function refusedScanReport(error: UnsafeCheckpointError, seed = 0): ScanReport {
  return {
    reportVersion: REPORT_VERSION,
    tool: { name: 'backdoor-lens', version: TOOL_VERSION },
    createdAt: new Date().toISOString(),
    model: { path: error.file ?? '', sha256: error.sha256, format: error.format, input: { name: '', dims: [] }, numClasses: null, bn: 'unknown' },
    data: null,
    verdict: 'inconclusive',
    evidence: [],
    attackType: null,
    targets: [],
    pairs: [],
    labels: [],
    neurons: [],
    findings: sortFindings(error.findings),
    methods: [],
    timings: { total: 0 },
    artifacts: [],
    seed,
  };
}

/** The text form: what was refused and why, without the empty model and method sections. */
export function formatRefusedReport(report: ScanReport): string {
  const lines = [`Backdoor Lens ${report.tool.version} — ${report.model.path}`, `  model: ${report.model.format} checkpoint, refused before a model was built (sha256 ${report.model.sha256})`, ''];
  lines.push(`Findings (${report.findings.length}):`);
  for (const f of report.findings) lines.push(`  ${f.severity === 'information' ? 'info' : f.severity}`.padEnd(10) + `${f.code} [${f.method}] ${f.message}`);
  lines.push('', 'No analysis ran: fix or replace the checkpoint (see docs/findings/ for each code).');
  return lines.join('\n');
}
