/**
 * Scan results as diagnostics: a summary on the checkpoint's own URI (so the file explorer marks
 * the file) and one per finding on the outline document, on the line of the layer it names.
 */
import { basename } from 'node:path';
import { DiagnosticSeverity, type Diagnostic, type Range } from 'vscode-languageserver';
import { codeInfo } from '../../../engine/report/codes';
import type { Finding, ScanReport, Severity } from '../../../engine/report/types';
import type { CheckpointState } from '../checkpoints';
import type { RenderedOutline } from './outline';
import { outlineUri } from '../uris';

export const SOURCE = 'Backdoor Lens';

/** What code actions need to find their checkpoint again. */
export interface DiagnosticData {
  checkpoint: string;
  method?: string;
  layer?: string;
}

const severityOf: Record<Severity, DiagnosticSeverity> = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  information: DiagnosticSeverity.Information,
};

export interface DiagnosticOptions {
  outlineDocuments: boolean;
  /** Base URI of docs/findings, without the trailing slash. */
  docsBase: string;
}

export interface PublishedDiagnostics {
  checkpoint: Diagnostic[];
  /** Diagnostics of the outline document (empty when outline documents are off). */
  outline: Diagnostic[];
  outlineUri: string;
}

const lineRange = (line: number, text = ''): Range => ({ start: { line, character: 0 }, end: { line, character: text.length } });
const fileStart: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };

function make(code: string, severity: DiagnosticSeverity, message: string, range: Range, options: DiagnosticOptions, data: DiagnosticData): Diagnostic {
  return { range, severity, code, codeDescription: { href: `${options.docsBase}/${code}.md` }, source: SOURCE, message, data };
}

export function findingLine(finding: Finding, rendered: RenderedOutline | undefined): number {
  if (!rendered) return 0;
  const layer = finding.location?.layer;
  return (layer !== undefined ? rendered.layerLines.get(layer) : undefined) ?? rendered.summaryLine;
}

/** The one diagnostic on the checkpoint file itself, or none when there is nothing to report. */
export function summaryDiagnostic(report: ScanReport, uri: string, options: DiagnosticOptions, related?: { uri: string; range: Range }): Diagnostic | undefined {
  const data: DiagnosticData = { checkpoint: uri };
  const name = basename(report.model.path);
  const detectedBy = [...new Set(report.findings.filter((f) => f.severity === 'error' && (f.location?.pair || f.location?.label !== undefined)).map((f) => f.method))];
  let d: Diagnostic | undefined;
  if (report.verdict === 'backdoored') {
    const engineSummary = report.findings.find((f) => f.code === 'BL003');
    const targets = report.targets.length ? `: target class${report.targets.length > 1 ? 'es' : ''} ${report.targets.join(', ')}` : '';
    const message = engineSummary?.message ?? `Backdoor detected in ${name}${targets}${report.attackType ? ` (${report.attackType})` : ''}${detectedBy.length ? `, found by ${detectedBy.join(', ')}` : ''}`;
    d = make('BL003', DiagnosticSeverity.Error, message, fileStart, options, data);
  } else {
    const top = report.findings.find((f) => f.severity === 'error') ?? report.findings.find((f) => f.severity === 'warning');
    if (top) {
      const flagged = report.neurons.filter((n) => n.flagged);
      const methods = [...new Set(flagged.map((n) => n.method.toUpperCase()))];
      const message =
        top.severity === 'warning' && flagged.length
          ? `${flagged.length} neuron${flagged.length === 1 ? '' : 's'} flagged in ${name} (${methods.join(', ')}), no trigger detected${report.verdict === 'inconclusive' ? ' (no detector ran)' : ''}`
          : `${name}: ${top.message}`;
      d = make(top.code, severityOf[top.severity], message, fileStart, options, data);
    } else if (report.verdict === 'inconclusive') {
      const info = report.findings.find((f) => f.severity === 'information');
      d = make(info?.code ?? 'BL021', DiagnosticSeverity.Information, `${name}: inconclusive, no backdoor detector ran${info ? ` (${info.message})` : ''}`, fileStart, options, data);
    }
  }
  if (d && related) d.relatedInformation = [{ location: related, message: 'findings per layer in the model outline' }];
  return d;
}

export function diagnosticsFor(state: CheckpointState, rendered: RenderedOutline | undefined, options: DiagnosticOptions): PublishedDiagnostics {
  const out: PublishedDiagnostics = { checkpoint: [], outline: [], outlineUri: outlineUri(state.path) };
  const data: DiagnosticData = { checkpoint: state.uri };
  if (state.status === 'failed' && state.failure) {
    const code = state.failure.code === 'limit' ? 'BL040' : 'BL050';
    const severity = state.failure.code === 'limit' ? DiagnosticSeverity.Warning : DiagnosticSeverity.Error;
    const where = state.failure.file && state.failure.file !== state.path && !state.failure.message.includes(state.failure.file) ? `${state.failure.file}: ` : '';
    const what = codeInfo(code).title;
    out.checkpoint.push(make(code, severity, `${what}: ${where}${state.failure.message}`, fileStart, options, data));
    return out;
  }
  const report = state.outcome?.report;
  // A rescan keeps showing the results it may replace until it has new ones.
  if (!report || !['done', 'queued', 'scanning'].includes(state.status)) return out;

  const onOutline = options.outlineDocuments && !!rendered;
  const summaryRange = rendered ? lineRange(rendered.summaryLine, rendered.lines[rendered.summaryLine]) : fileStart;
  const summary = summaryDiagnostic(report, state.uri, options, onOutline ? { uri: out.outlineUri, range: summaryRange } : undefined);
  if (summary) out.checkpoint.push(summary);
  for (const f of report.findings) {
    const line = onOutline ? findingLine(f, rendered) : 0;
    const range = onOutline ? lineRange(line, rendered!.lines[line]) : fileStart;
    const d = make(f.code, severityOf[f.severity], f.message, range, options, { ...data, method: f.method, ...(f.location?.layer ? { layer: f.location.layer } : {}) });
    (onOutline ? out.outline : out.checkpoint).push(d);
  }
  return out;
}
