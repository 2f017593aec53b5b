/**
 * The detectors' evidence as the report states it: a generic table of every test (statistic,
 * value, threshold and where it comes from), and per test the chart its data allows — per class
 * for label statistics and for class pairs, and the class-pair matrix. Thresholds are always the
 * report's own (evidence[].threshold); a new detector's evidence shows without changes here.
 */
import type { LabelResult, PairResult, ScanReport, VerdictEvidence } from '../../engine';
import { evidenceText } from '../../protocol/verdict-text';
import { barsWithThreshold, type Theme } from './charts';
import { h } from './dom';
import { scaleColour, scaleLegend } from './scale';
import { chartBox, section } from './sections';

const num = (x: number) => (Math.abs(x) >= 1000 || (Math.abs(x) < 0.01 && x !== 0) ? x.toExponential(2) : Number(x.toPrecision(3)).toString());

/** The pairs a test of this method judged ('pairs:patch' pairs, or unlabelled pairs for a plain 'pairs'). */
export function pairsOf(report: ScanReport, e: VerdictEvidence): PairResult[] {
  return report.pairs.filter((p) => (p.method ?? 'pairs') === e.method || (!p.method && e.method.startsWith('pairs')));
}

export function labelsOf(report: ScanReport, e: VerdictEvidence): LabelResult[] {
  return report.labels.filter((l) => (l.method ?? e.method) === e.method);
}

/** Whether the plotted values are the statistic the threshold applies to (the test's value is one of them). */
function plotsTheStatistic(values: number[], e: VerdictEvidence): boolean {
  const extreme = e.direction === 'above' ? Math.max(...values) : Math.min(...values);
  return Math.abs(extreme - e.value) <= 1e-6 * Math.max(1, Math.abs(e.value)) || /anomaly index/i.test(e.statistic);
}

export function evidenceSection(report: ScanReport): HTMLElement {
  const evidence = report.evidence ?? [];
  if (!evidence.length) {
    const why = report.data ? 'No detector ran on this data.' : 'No detector ran: the scan had no clean data (only data-free analyses ran).';
    return section('evidence', 'Evidence behind the verdict', h('p', {}, why));
  }
  const rows = evidence.map((e) =>
    h(
      'tr',
      { class: e.flagged ? 'flagged-row' : '', 'data-method': e.method, 'data-threshold': e.threshold, 'data-value': e.value },
      h('td', {}, e.method),
      h('td', {}, e.statistic),
      h('td', { class: 'num' }, num(e.value)),
      h('td', { class: 'num' }, `${e.direction === 'above' ? '>' : '<'} ${num(e.threshold)}`),
      h('td', {}, e.thresholdSource),
      h('td', { class: e.flagged ? 'status-flagged' : '' }, e.flagged ? `flagged${e.targets.length ? ` → target ${e.targets.join(', ')}` : ''}${e.attackType ? ` (${e.attackType})` : ''}` : 'not flagged'),
    ),
  );
  return section(
    'evidence',
    'Evidence behind the verdict',
    h('table', { class: 'grid' }, h('tr', {}, ...['test', 'statistic', 'value', 'flagged when', 'threshold from', 'result'].map((c) => h('th', {}, c))), ...rows),
    h('p', { class: 'caption' }, `The verdict is "backdoored" when any test is flagged. ${evidence.map(evidenceText).join('; ')}.`),
  );
}

/** Per class: the largest statistic of the pairs into each target class (pairs), or each label's own (labels). */
function perClassChart(e: VerdictEvidence, classes: { label: number; value: number; flagged: boolean }[], t: Theme, what: string): HTMLElement {
  const values = classes.map((c) => c.value);
  const drawThreshold = plotsTheStatistic(values, e);
  const { box, canvas } = chartBox(`${e.method}: ${what} per class; threshold ${num(e.threshold)}; flagged: ${classes.filter((c) => c.flagged).map((c) => c.label).join(', ') || 'none'}`);
  canvas.dataset.method = e.method;
  queueMicrotask(() =>
    barsWithThreshold(canvas, t, {
      labels: classes.map((c) => `class ${c.label}`),
      values,
      colours: values.map((v) => scaleColour(t, v, e.threshold, e.direction)),
      flagged: classes.map((c) => c.flagged),
      ...(drawThreshold ? { threshold: e.threshold, thresholdLabel: `threshold ${num(e.threshold)} (${e.thresholdSource})` } : {}),
      valueLabel: what,
      xTitle: 'target class',
      yMin: e.direction === 'above' ? 1.5 * e.threshold : undefined,
    }),
  );
  const flagged = classes.filter((c) => c.flagged).map((c) => c.label);
  const caption = drawThreshold
    ? `${e.method}: classes with a ${what} ${e.direction === 'above' ? 'above' : 'below'} ${num(e.threshold)} are flagged${flagged.length ? `: class ${flagged.join(', ')}` : ': none'}. Red outline: flagged.`
    : `${e.method}: the threshold ${num(e.threshold)} applies to ${e.statistic}, which this chart does not plot.`;
  return h('div', { class: 'detector-chart', 'data-method': e.method }, h('h3', {}, `${e.method} — ${what} per class`), box, scaleLegend(t, e.threshold, e.thresholdSource), h('p', { class: 'caption' }, caption));
}

export function anomalySection(report: ScanReport, t: Theme): HTMLElement | undefined {
  const charts: HTMLElement[] = [];
  for (const e of report.evidence ?? []) {
    const labels = labelsOf(report, e);
    const pairs = pairsOf(report, e);
    if (labels.length) {
      // A per-class statistic of its own (MM-BD's maximum margin) is what the method measured; else the anomaly index.
      const own = labels.every((l) => l.statistic !== undefined && l.l1 === undefined);
      const sorted = [...labels].sort((a, b) => a.label - b.label);
      charts.push(perClassChart(e, sorted.map((l) => ({ label: l.label, value: own ? l.statistic! : l.anomalyIndex, flagged: l.flagged })), t, own ? 'per-class statistic' : 'anomaly index'));
    } else if (pairs.length) {
      const byTarget = new Map<number, { value: number; flagged: boolean }>();
      for (const p of pairs) {
        const c = byTarget.get(p.target) ?? { value: -Infinity, flagged: false };
        byTarget.set(p.target, { value: Math.max(c.value, p.anomalyIndex), flagged: c.flagged || p.flagged });
      }
      const classes = [...byTarget].sort((a, b) => a[0] - b[0]).map(([label, c]) => ({ label, ...c }));
      charts.push(perClassChart(e, classes, t, 'largest pair anomaly index'));
    }
  }
  if (!charts.length) return undefined;
  return section('anomaly', 'Anomaly index per class', ...charts);
}

/** A pair found by a mapping screen (trigger reversal per target or per shift): its statistic is the share of held-out images moved. */
const screened = (p: PairResult) => /^pairs:(targets|shifts):/.test(p.method ?? '');

/** Why a cell is (or is not) flagged, for its tooltip. */
function cellText(p: PairResult, e: VerdictEvidence): string {
  if (screened(p)) return `${p.source} → ${p.target}: Flagged: the ${p.method} trigger (R ${num(p.anomalyIndex)} > ${num(e.threshold)}) sends ${Math.round(100 * p.statistic)}% of held-out class-${p.source} images to class ${p.target}.`;
  const head = `${p.source} → ${p.target}: anomaly index ${num(p.anomalyIndex)} (threshold ${num(e.threshold)}), statistic ${p.statistic.toPrecision(3)}`;
  if (p.via === 'transfer') return `${head}. Flagged by trigger transfer: the trigger reversed for the outlier pairs sends ${p.transferShare !== undefined ? `${Math.round(100 * p.transferShare)}% of` : ''} class-${p.source} images to class ${p.target}, although its own index is below the threshold.`;
  if (p.flagged) return `${head}. Flagged: an outlier, above the threshold.`;
  if (p.anomalyIndex > e.threshold) return `${head}. Above the threshold but not flagged: its reversed trigger did not reach the success rate the detector requires.`;
  return `${head}. Not flagged: below the threshold, and the outliers' trigger does not move class ${p.source} to ${p.target}.`;
}

/** The K×K class-pair matrix of one pair test, on the fixed colour scale of its threshold. */
function pairMatrix(report: ScanReport, e: VerdictEvidence, pairs: PairResult[], t: Theme): HTMLElement {
  const k = Math.max(report.model.numClasses ?? 0, ...pairs.map((p) => Math.max(p.source, p.target) + 1));
  const at = new Map<string, PairResult>(pairs.map((p) => [`${p.source},${p.target}`, p]));
  const header = h('tr', {}, h('th', { class: 'corner' }, 'source ↓ target →'), ...Array.from({ length: k }, (_, c) => h('th', {}, String(c))));
  const rows = Array.from({ length: k }, (_, s) =>
    h(
      'tr',
      {},
      h('th', {}, String(s)),
      ...Array.from({ length: k }, (_, c) => {
        const p = at.get(`${s},${c}`);
        if (!p) return h('td', { class: 'cell empty' }, s === c ? '—' : '');
        const kind = p.flagged ? (p.via === 'transfer' ? ' flagged transfer' : ' flagged outlier') : '';
        const shown = screened(p) ? `${Math.round(100 * p.statistic)}%` : `${p.anomalyIndex.toFixed(1)}${p.via === 'transfer' ? 'ᵗ' : ''}`;
        const cell = h('td', { class: `cell${kind}`, title: cellText(p, e), 'data-pair': `${s}-${c}` }, shown);
        cell.style.backgroundColor = scaleColour(t, p.anomalyIndex, e.threshold, e.direction);
        return cell;
      }),
    ),
  );
  const outliers = pairs.filter((p) => p.flagged && p.via !== 'transfer');
  const transfers = pairs.filter((p) => p.via === 'transfer');
  const near = pairs.filter((p) => !p.flagged && p.anomalyIndex > 0.5 * e.threshold).sort((a, b) => b.anomalyIndex - a.anomalyIndex).slice(0, 3);
  const lines = pairs.every(screened)
    ? [
        `${e.method}: R ${num(e.value)} > ${num(e.threshold)}; its reversed trigger, stamped on held-out images, sends these classes to their target (share of each class moved): ${pairs.map((p) => `${p.source}→${p.target} ${Math.round(100 * p.statistic)}%`).join(', ')}.`,
        'Only the pairs the flagged trigger moves are drawn: the screens reverse one trigger per target class or per class shift, not one per pair.',
      ]
    : [
    `Flagged as outliers (anomaly index above ${num(e.threshold)}): ${outliers.map((p) => `${p.source}→${p.target} (${num(p.anomalyIndex)})`).join(', ') || 'none'}.`,
    transfers.length
      ? `Flagged by trigger transfer (ᵗ, dashed): ${transfers.map((p) => `${p.source}→${p.target} (index ${num(p.anomalyIndex)}${p.transferShare !== undefined ? `, ${Math.round(100 * p.transferShare)}% of class ${p.source} moved` : ''})`).join(', ')} — the trigger reversed for the outliers sends most of these classes to the target, so they carry the same backdoor although their own index is below the threshold.`
      : '',
    near.length ? `Highest unflagged: ${near.map((p) => `${p.source}→${p.target} (${num(p.anomalyIndex)})`).join(', ')} — below the threshold${transfers.length || outliers.length ? ", and the outliers' trigger does not move them" : ''}.` : '',
      ].filter(Boolean);
  const legendExtra = [h('span', { class: 'legend-item' }, h('span', { class: 'swatch outline-outlier' }), 'outlier'), h('span', { class: 'legend-item' }, h('span', { class: 'swatch outline-transfer' }), 'transfer')];
  return h(
    'div',
    { class: 'matrix-block', 'data-method': e.method },
    h('h3', {}, `${e.method} — ${k}×${k} class pairs`),
    h('table', { class: 'matrix', 'aria-label': `${e.method} class-pair anomaly matrix`, 'data-threshold': e.threshold }, header, ...rows),
    scaleLegend(t, e.threshold, e.thresholdSource, legendExtra),
    ...lines.map((l) => h('p', { class: 'caption' }, l)),
  );
}

export function pairMatrixSection(report: ScanReport, t: Theme): HTMLElement | undefined {
  const blocks = (report.evidence ?? []).flatMap((e) => {
    const pairs = pairsOf(report, e);
    return pairs.length ? [pairMatrix(report, e, pairs, t)] : [];
  });
  if (!blocks.length) return undefined;
  return section('pairs', 'Class-pair matrix', ...blocks);
}

