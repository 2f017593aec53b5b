/**
 * Scan results as diagnostics: a summary on the checkpoint's own URI (so the file explorer marks
 * the file) and one per finding on the outline document, on the line of the layer it names.
 */
import { DiagnosticSeverity, type Diagnostic, type Range } from 'vscode-languageserver';
import { clip, failureLine, findingMessage, limitSetting, neuronMethods, verdictLine } from '../../../protocol/verdict-text';
import type { Finding, ScanReport, Severity } from '../../../engine';
import type { CheckpointState } from '../checkpoints';
import type { RenderedOutline } from './outline';
import { outlineUri } from '../uris';

export const SOURCE = 'Backdoor Lens';

/** What code actions need to find their checkpoint again, and what kind of diagnostic it is. */
export interface DiagnosticData {
  checkpoint: string;
  method?: string;
  layer?: string;
  /**
   * 'verdict': the summary of a scan; 'finding': one finding; 'needs-data': no detector ran for
   * want of data; 'failed': the scan could not run; 'limit': a limit stopped it.
   */
  kind?: 'verdict' | 'finding' | 'needs-data' | 'failed' | 'limit';
  /** For 'failed': the data file the error is about, when it is not the model. */
  dataFile?: string;
  /** For 'limit': what lifts it, 'backdoorLens.timeLimitSeconds' or a key of backdoor-lens.json ('limits.maxModelBytes'). */
  setting?: string;
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

/**
 * The severity a finding is shown with. Severity follows the verdict: neuron flags without a
 * detector's verdict are information (a clean model must not look suspicious in the Explorer);
 * with a detected backdoor they are warnings that point at the layers involved.
 */
export function displaySeverity(f: Finding, report: ScanReport): DiagnosticSeverity {
  if (f.severity === 'warning' && neuronMethods(report).has(f.method) && report.verdict !== 'backdoored') return DiagnosticSeverity.Information;
  return severityOf[f.severity];
}

/** Findings that add nothing in the editor: a neuron method's summary that flagged nothing. */
function worthShowing(f: Finding, report: ScanReport): boolean {
  if (!neuronMethods(report).has(f.method) || f.location?.layer || f.severity !== 'information') return true;
  return report.neurons.some((n) => n.method === f.method && n.flagged);
}

/** The one diagnostic on the checkpoint file itself, or none when there is nothing to report. */
export function summaryDiagnostic(report: ScanReport, uri: string, options: DiagnosticOptions, related?: { uri: string; range: Range }): Diagnostic | undefined {
  const data: DiagnosticData = { checkpoint: uri, kind: 'verdict' };
  let d: Diagnostic | undefined;
  const error = report.findings.find((f) => f.severity === 'error');
  if (report.verdict === 'backdoored') {
    d = make('BL003', DiagnosticSeverity.Error, verdictLine(report), fileStart, options, data);
  } else if (error) {
    // A refused or dangerous checkpoint (BL030, BL032): the finding itself is the summary.
    d = make(error.code, DiagnosticSeverity.Error, findingMessage(error, report), fileStart, options, { ...data, kind: 'finding', method: error.method });
  } else if (report.verdict === 'inconclusive') {
    const code = report.findings.find((f) => f.code === 'BL021')?.code ?? 'BL021';
    const message = report.data ? verdictLine(report) : clip(`${verdictLine(report)} — choose clean data (quick fix) for a verdict`);
    d = make(code, DiagnosticSeverity.Information, message, fileStart, options, report.data ? data : { ...data, kind: 'needs-data' });
  } else {
    const flagged = report.neurons.filter((n) => n.flagged);
    if (flagged.length) {
      const methods = [...new Set(flagged.map((n) => n.method.toUpperCase()))];
      d = make(report.findings.find((f) => f.location?.layer && neuronMethods(report).has(f.method))?.code ?? 'BL003', DiagnosticSeverity.Information, clip(`${verdictLine(report)}; ${methods.join(', ')} flagged ${flagged.length} channels (no verdict alone)`), fileStart, options, data);
    }
  }
  if (d && related) d.relatedInformation = [{ location: related, message: 'findings per layer in the model outline' }];
  return d;
}

export function diagnosticsFor(state: CheckpointState, rendered: RenderedOutline | undefined, options: DiagnosticOptions): PublishedDiagnostics {
  const out: PublishedDiagnostics = { checkpoint: [], outline: [], outlineUri: outlineUri(state.path) };
  const data: DiagnosticData = { checkpoint: state.uri };
  if (state.status === 'failed' && state.failure) {
    // Not the backdoor red: the file was not judged. The client marks it with its own decoration.
    const limit = state.failure.code === 'limit';
    const other = state.failure.file && state.failure.file !== state.path ? state.failure.file : undefined;
    const setting = limit ? limitSetting(state.failure.message) : undefined;
    out.checkpoint.push(
      make(limit ? 'BL040' : 'BL050', DiagnosticSeverity.Information, failureLine(state.failure, state.path), fileStart, options, {
        ...data,
        kind: limit ? 'limit' : 'failed',
        ...(other ? { dataFile: other } : {}),
        ...(setting ? { setting } : {}),
      }),
    );
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
    if (!worthShowing(f, report)) continue;
    const line = onOutline ? findingLine(f, rendered) : 0;
    const range = onOutline ? lineRange(line, rendered!.lines[line]) : fileStart;
    const d = make(f.code, displaySeverity(f, report), findingMessage(f, report), range, options, { ...data, kind: 'finding', method: f.method, ...(f.location?.layer ? { layer: f.location.layer } : {}) });
    (onOutline ? out.outline : out.checkpoint).push(d);
  }
  return out;
}
