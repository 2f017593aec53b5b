/**
 * The model outline document: a read-only text view of the graph, one line per layer (name, op,
 * output shape, flagged-neuron counts), that per-finding diagnostics, code lenses and hovers
 * attach to.
 */
import { basename } from 'node:path';
import type { NeuronScore, ScanReport } from '../../../engine';
import type { Dim, ModelOutline, OutlineLayer } from '../jobs/messages';
import { decisiveEvidence, evidenceText } from '../../../protocol/verdict-text';

export interface RenderedOutline {
  text: string;
  lines: string[];
  /** The line that states the verdict; findings without a layer go here. */
  summaryLine: number;
  /** First line of each layer name. */
  layerLines: Map<string, number>;
  /** The layer shown on each line, for hovers. */
  layerAt: Map<number, OutlineLayer>;
}

export interface LayerFlags {
  method: string;
  flagged: number;
  total: number;
}

export const shapeText = (dims: Dim[] | undefined) => (dims ? `[${dims.join(', ')}]` : '');

/** Flagged neurons per method for each layer, in method order of the report. */
export function flagsByLayer(neurons: readonly NeuronScore[]): Map<string, LayerFlags[]> {
  const out = new Map<string, Map<string, LayerFlags>>();
  for (const n of neurons) {
    const byMethod = out.get(n.layer) ?? new Map<string, LayerFlags>();
    out.set(n.layer, byMethod);
    const f = byMethod.get(n.method) ?? { method: n.method, flagged: 0, total: 0 };
    byMethod.set(n.method, f);
    f.total++;
    if (n.flagged) f.flagged++;
  }
  return new Map([...out].map(([layer, m]) => [layer, [...m.values()]]));
}

export function verdictText(report: ScanReport | undefined): string {
  if (!report) return 'not scanned yet';
  const evidence = decisiveEvidence(report).map(evidenceText).join('; ');
  const by = evidence ? `, ${evidence}` : '';
  if (report.verdict === 'backdoored') {
    const targets = report.targets.length ? ` — target class${report.targets.length > 1 ? 'es' : ''} ${report.targets.join(', ')}` : '';
    return `BACKDOORED${targets}${report.attackType ? ` (${report.attackType})` : ''}${by}`;
  }
  if (report.verdict === 'clean') return report.data ? `no backdoor found${by}` : `no backdoor found without data${by} — data-free checks miss most backdoors (Ctrl+. to choose clean data)`;
  return report.data ? 'inconclusive: no detector could run on this data' : 'inconclusive: no clean data set, so no detector ran (Ctrl+. to choose one)';
}

export function renderOutline(outline: ModelOutline, report?: ScanReport): RenderedOutline {
  const flags = flagsByLayer(report?.neurons ?? []);
  const lines: string[] = [];
  const layerLines = new Map<string, number>();
  const layerAt = new Map<number, OutlineLayer>();
  const classes = outline.numClasses === null ? 'classes unknown' : `${outline.numClasses} classes`;
  lines.push(`${basename(outline.path)} — ${outline.format}${outline.architecture ? ` (${outline.architecture})` : ''}, ${classes}, BatchNorm ${outline.bn}, sha256 ${outline.sha256.slice(0, 12)}`);
  const summaryLine = lines.length;
  const ran = report ? report.methods.filter((m) => m.status === 'ran').map((m) => m.method) : [];
  lines.push(`verdict: ${verdictText(report)}${ran.length ? ` · methods: ${ran.join(', ')}` : ''}`);

  const rows = [
    ...outline.inputs.map((i) => ({ name: i.name, op: 'input', shape: shapeText(i.dims), layer: undefined as OutlineLayer | undefined })),
    ...outline.layers.map((l) => ({ name: l.name, op: l.op, shape: shapeText(l.shape), layer: l })),
    ...outline.outputs.map((o) => ({ name: o.name, op: 'output', shape: shapeText(o.dims), layer: undefined as OutlineLayer | undefined })),
  ];
  const w1 = Math.min(48, Math.max(8, ...rows.map((r) => r.name.length)));
  const w2 = Math.max(6, ...rows.map((r) => r.op.length));
  const w3 = Math.max(5, ...rows.map((r) => r.shape.length));
  for (const r of rows) {
    const f = r.layer ? (flags.get(r.layer.name) ?? []) : [];
    const flagText = f
      .filter((x) => x.flagged > 0)
      .map((x) => `${x.method.toUpperCase()} ${x.flagged}/${x.total} flagged`)
      .join(' · ');
    const line = `${r.name.padEnd(w1)}  ${r.op.padEnd(w2)}  ${r.shape.padEnd(w3)}  ${flagText}`.trimEnd();
    if (r.layer) {
      if (!layerLines.has(r.layer.name)) layerLines.set(r.layer.name, lines.length);
      layerAt.set(lines.length, r.layer);
    }
    lines.push(line);
  }
  return { text: lines.join('\n') + '\n', lines, summaryLine, layerLines, layerAt };
}
