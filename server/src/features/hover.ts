/** Hovers on outline lines: the layer's neuron statistics per method, or the scan summary. */
import type { Hover } from 'vscode-languageserver';
import type { NeuronScore, ScanReport } from '../../../engine';
import type { RenderedOutline } from './outline';
import { shapeText, verdictText } from './outline';
import { evidenceText } from '../../../protocol/verdict-text';

const fmt = (x: number) => (Math.abs(x) >= 1000 || (Math.abs(x) < 0.01 && x !== 0) ? x.toExponential(2) : x.toFixed(3));

function layerStats(scores: NeuronScore[]): string[] {
  const byMethod = new Map<string, NeuronScore[]>();
  for (const s of scores) byMethod.set(s.method, [...(byMethod.get(s.method) ?? []), s]);
  const rows = ['| method | channels | flagged | min | mean | max | threshold |', '|---|---:|---:|---:|---:|---:|---:|'];
  const flaggedLines: string[] = [];
  for (const [method, list] of byMethod) {
    const values = list.map((s) => s.score);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const flagged = list.filter((s) => s.flagged);
    rows.push(`| ${method.toUpperCase()} | ${list.length} | ${flagged.length} | ${fmt(Math.min(...values))} | ${fmt(mean)} | ${fmt(Math.max(...values))} | ${fmt(list[0].threshold)} |`);
    if (flagged.length) {
      const top = [...flagged].sort((a, b) => Math.abs(b.score - b.threshold) - Math.abs(a.score - a.threshold)).slice(0, 8);
      flaggedLines.push(`**${method.toUpperCase()}** flagged: ${top.map((s) => `#${s.channel} (${fmt(s.score)})`).join(', ')}${flagged.length > top.length ? `, … ${flagged.length - top.length} more` : ''}`);
    }
  }
  return [...rows, '', ...flaggedLines];
}

export function hoverFor(line: number, rendered: RenderedOutline, report: ScanReport | undefined): Hover | null {
  const range = { start: { line, character: 0 }, end: { line, character: rendered.lines[line]?.length ?? 0 } };
  if (line === rendered.summaryLine) {
    if (!report) return { contents: { kind: 'markdown', value: 'Not scanned yet: run **Backdoor Lens: Scan for Backdoor**.' }, range };
    const methods = report.methods.map((m) => `- \`${m.method}\` ${m.status}${m.status === 'ran' ? ` in ${(m.ms / 1000).toFixed(1)} s` : m.reason ? `: ${m.reason}` : ''}`);
    const data = report.data ? `${report.data.n} samples from \`${report.data.path}\`` : 'no data set';
    const evidence = (report.evidence ?? []).map((e) => `- ${e.flagged ? '**flagged**' : 'not flagged'}: ${evidenceText(e)} — ${e.statistic}; threshold: ${e.thresholdSource}`);
    return { contents: { kind: 'markdown', value: [`**Verdict:** ${verdictText(report)}`, '', ...(evidence.length ? ['Evidence:', ...evidence, ''] : []), `Data: ${data}`, '', ...methods].join('\n') }, range };
  }
  const layer = rendered.layerAt.get(line);
  if (!layer) return null;
  const header = `**${layer.name}** — \`${layer.op}\` ${shapeText(layer.shape)}${layer.parameters ? ` · ${layer.parameters.toLocaleString('en-US')} parameters` : ''}`;
  const scores = report?.neurons.filter((n) => n.layer === layer.name) ?? [];
  // The findings on this line are diagnostics, which the editor shows in the same hover: not repeated here.
  const body = scores.length ? layerStats(scores) : [report ? 'No neuron scores for this layer.' : 'Not scanned yet.'];
  return { contents: { kind: 'markdown', value: [header, '', ...body].join('\n') }, range };
}
