/** The report view's sections, each built from the report (engine report format v1). */
import type { NeuronScore, PairResult, ScanReport } from '../../engine/report/types';
import type { ReportView } from '../../protocol/report-view';
import { barsWithThreshold, beforeAfter, type Theme } from './charts';
import { h, pct } from './dom';

/** Neural Cleanse's and the pair detector's MAD cut-off. */
const ANOMALY_THRESHOLD = 2;

export function section(id: string, title: string, ...body: (Node | string)[]): HTMLElement {
  const el = h('vscode-collapsible', { id, title, open: true, class: 'section' });
  el.append(h('div', { class: 'section-body' }, ...body));
  return el;
}

function chartBox(label: string, height = 260): { box: HTMLElement; canvas: HTMLCanvasElement } {
  const canvas = h('canvas', { role: 'img', 'aria-label': label });
  const box = h('div', { class: 'chart' }, canvas);
  box.style.height = `${height}px`;
  return { box, canvas };
}

export function summarySection(view: ReportView, report: ScanReport): HTMLElement {
  const rows: [string, string][] = [
    ['Verdict', report.verdict === 'backdoored' ? `backdoored${report.targets.length ? ` — target class ${report.targets.join(', ')}` : ''}${report.attackType ? ` (${report.attackType})` : ''}` : report.verdict === 'clean' ? 'no backdoor found' : 'inconclusive: no detector ran'],
    ['Model', `${report.model.format}, ${report.model.numClasses ?? '?'} classes, input ${report.model.input.name} [${report.model.input.dims.join(', ')}], BatchNorm ${report.model.bn}`],
    ['Data', report.data ? `${report.data.n} ${report.data.kind} samples${report.data.labelled ? ' with labels' : ''} from ${report.data.path}` : 'none (data-free methods only)'],
    ['Scanned', `${new Date(report.createdAt).toLocaleString()} in ${((report.timings.total ?? 0) / 1000).toFixed(1)} s, seed ${report.seed}`],
  ];
  const table = h('table', { class: 'kv' }, ...rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', { 'data-field': k.toLowerCase() }, v))));
  const methods = h(
    'table',
    { class: 'grid' },
    h('tr', {}, h('th', {}, 'method'), h('th', {}, 'status'), h('th', {}, 'time'), h('th', {}, 'notes')),
    ...report.methods.map((m) => h('tr', {}, h('td', {}, m.method), h('td', { class: `status-${m.status}` }, m.status), h('td', {}, m.status === 'ran' ? `${(m.ms / 1000).toFixed(1)} s` : ''), h('td', {}, [m.reason, ...(m.notes ?? [])].filter(Boolean).join(' · ')))),
  );
  return section('summary', 'Summary', table, report.methods.length ? methods : h('p', {}, 'No analysis ran.'), h('p', { class: 'muted' }, view.fileName));
}

export function findingsSection(report: ScanReport): HTMLElement {
  if (!report.findings.length) return section('findings', 'Findings', h('p', {}, 'No findings.'));
  return section(
    'findings',
    `Findings (${report.findings.length})`,
    h(
      'table',
      { class: 'grid' },
      h('tr', {}, h('th', {}, 'severity'), h('th', {}, 'code'), h('th', {}, 'where'), h('th', {}, 'message')),
      ...report.findings.map((f) =>
        h('tr', { class: `sev-${f.severity}` }, h('td', {}, f.severity), h('td', {}, f.code), h('td', {}, f.location?.layer ?? (f.location?.pair ? `${f.location.pair.source}→${f.location.pair.target}` : f.location?.label !== undefined ? `class ${f.location.label}` : '')), h('td', {}, f.message)),
      ),
    ),
  );
}

/** Anomaly index per class: per target label (Neural Cleanse), or the largest over pairs into each class. */
export function anomalySection(report: ScanReport, t: Theme): HTMLElement | undefined {
  const k = report.model.numClasses ?? 0;
  let perClass: { label: number; index: number; flagged: boolean }[];
  let threshold = ANOMALY_THRESHOLD;
  let caption = (flagged: number[]) => `Classes above ${ANOMALY_THRESHOLD} (MAD) are flagged: ${flagged.length ? `class ${flagged.join(', ')}` : 'none'}.`;
  let title = 'Anomaly index per class';
  // Trigger reversal's target screens: one bar per class, R = median / its trigger size, against the
  // calibrated threshold of the screen that decided (or came closest).
  const screens = report.evidence.filter((e) => e.method.startsWith('pairs:targets:'));
  const ncLabels = report.labels.filter((l) => l.method === 'nc');
  if (screens.length) {
    const chosen = screens.find((e) => e.flagged) ?? [...screens].sort((a, b) => b.value / b.threshold - a.value / a.threshold)[0];
    perClass = report.labels.filter((l) => l.method === chosen.method).map((l) => ({ label: l.label, index: l.anomalyIndex, flagged: l.flagged }));
    threshold = chosen.threshold;
    title = `Trigger size ratio per target class (${chosen.method.replace('pairs:targets:', '')} triggers)`;
    caption = (flagged) => `R = median / this class's trigger size; above ${threshold.toFixed(2)} (${chosen.thresholdSource}) a class is a candidate, confirmed on held-out images: ${flagged.length ? `class ${flagged.join(', ')}` : 'none'}.`;
  } else if (ncLabels.length) perClass = ncLabels.map((l) => ({ label: l.label, index: l.anomalyIndex, flagged: l.flagged }));
  else if (report.pairs.length) {
    perClass = [];
    for (let c = 0; c < Math.max(k, ...report.pairs.map((p) => p.target + 1)); c++) {
      const into = report.pairs.filter((p) => p.target === c);
      if (!into.length) continue;
      perClass.push({ label: c, index: Math.max(...into.map((p) => p.anomalyIndex)), flagged: into.some((p) => p.flagged) });
    }
  } else return undefined;
  perClass.sort((a, b) => a.label - b.label);
  const flagged = perClass.filter((c) => c.flagged).map((c) => c.label);
  const { box, canvas } = chartBox(`${title}; flagged: ${flagged.length ? flagged.join(', ') : 'none'}`);
  const el = section('anomaly', title, box, h('p', { class: 'caption' }, caption(flagged)));
  queueMicrotask(() =>
    barsWithThreshold(canvas, t, { labels: perClass.map((c) => `class ${c.label}`), values: perClass.map((c) => c.index), flagged: perClass.map((c) => c.flagged), threshold, thresholdLabel: 'threshold', valueLabel: screens.length ? 'R' : 'anomaly index', xTitle: 'target class' }),
  );
  return el;
}

/** MM-BD (no data): the largest logit margin each class reaches; the verdict is the p-value of the largest. */
export function maxMarginSection(report: ScanReport, t: Theme): HTMLElement | undefined {
  const labels = report.labels.filter((l) => l.method === 'mmbd' && l.statistic !== undefined).sort((a, b) => a.label - b.label);
  if (!labels.length) return undefined;
  const evidence = report.evidence.find((e) => e.method === 'mmbd');
  const { box, canvas } = chartBox(`Maximum logit margin per class without data; flagged: ${labels.filter((l) => l.flagged).map((l) => l.label).join(', ') || 'none'}`);
  const el = section('max-margin', 'Maximum margin per class (MM-BD, no data)', box, h('p', { class: 'caption' }, evidence?.summary ?? ''));
  queueMicrotask(() =>
    barsWithThreshold(canvas, t, { labels: labels.map((l) => `class ${l.label}`), values: labels.map((l) => l.statistic!), flagged: labels.map((l) => l.flagged), valueLabel: 'maximum margin', xTitle: 'class' }),
  );
  return el;
}

/** The K×K class-pair matrix: anomaly index of each source→target reversal, flagged pairs outlined. */
export function pairMatrixSection(report: ScanReport): HTMLElement | undefined {
  if (!report.pairs.length) return undefined;
  const k = Math.max(report.model.numClasses ?? 0, ...report.pairs.map((p) => Math.max(p.source, p.target) + 1));
  const at = new Map<string, PairResult>(report.pairs.map((p) => [`${p.source},${p.target}`, p]));
  const max = Math.max(ANOMALY_THRESHOLD, ...report.pairs.map((p) => p.anomalyIndex));
  const header = h('tr', {}, h('th', { class: 'corner' }, 'source ↓ target →'), ...Array.from({ length: k }, (_, c) => h('th', {}, String(c))));
  const rows = Array.from({ length: k }, (_, s) =>
    h(
      'tr',
      {},
      h('th', {}, String(s)),
      ...Array.from({ length: k }, (_, c) => {
        const p = at.get(`${s},${c}`);
        if (!p) return h('td', { class: 'cell empty' }, s === c ? '—' : '');
        const cell = h('td', { class: `cell${p.flagged ? ' flagged' : ''}`, title: `${s}→${c}: anomaly index ${p.anomalyIndex.toFixed(2)}, statistic ${p.statistic.toPrecision(3)}${p.flagged ? ' (flagged)' : ''}` }, p.anomalyIndex.toFixed(1));
        const share = Math.round(100 * Math.min(Math.max(p.anomalyIndex, 0) / max, 1));
        // CSSOM (not a style attribute), so the strict CSP allows it.
        cell.style.backgroundColor = `color-mix(in srgb, var(--vscode-charts-red) ${share}%, transparent)`;
        return cell;
      }),
    ),
  );
  const flagged = report.pairs.filter((p) => p.flagged).map((p) => `${p.source}→${p.target}`);
  return section('pairs', `Class-pair matrix (${k}×${k})`, h('table', { class: 'matrix', 'aria-label': 'class-pair anomaly matrix' }, header, ...rows), h('p', { class: 'caption' }, `Flagged pairs: ${flagged.length ? flagged.join(', ') : 'none'}.`));
}

export function triggersSection(view: ReportView): HTMLElement | undefined {
  if (!view.images.length) return undefined;
  const figures = view.images.map((img) => {
    const what = img.pair ? `${img.kind} ${img.pair.source}→${img.pair.target}` : img.label !== undefined ? `${img.kind} for class ${img.label}` : img.kind;
    return h('figure', {}, h('img', { src: img.dataUri, alt: what }), h('figcaption', {}, what));
  });
  return section('triggers', 'Reversed triggers', h('div', { class: 'gallery' }, ...figures));
}

/** Per-layer neuron scores against the layer's threshold; pick the layer and method. */
export function neuronsSection(report: ScanReport, t: Theme): HTMLElement | undefined {
  if (!report.neurons.length) return undefined;
  const groups = new Map<string, NeuronScore[]>();
  for (const n of report.neurons) {
    const key = `${n.method} · ${n.layer}`;
    groups.set(key, [...(groups.get(key) ?? []), n]);
  }
  const keys = [...groups.keys()].sort((a, b) => (groups.get(b)!.filter((n) => n.flagged).length - groups.get(a)!.filter((n) => n.flagged).length) || a.localeCompare(b));
  const select = h('vscode-single-select', { 'aria-label': 'layer and method' }, ...keys.map((key) => h('vscode-option', { value: key }, `${key} (${groups.get(key)!.filter((n) => n.flagged).length} flagged)`)));
  const { box, canvas } = chartBox('neuron scores against the threshold', 240);
  const caption = h('p', { class: 'caption' });
  let chart: ReturnType<typeof barsWithThreshold> | undefined;
  const draw = (key: string) => {
    chart?.destroy();
    const list = [...groups.get(key)!].sort((a, b) => a.channel - b.channel);
    chart = barsWithThreshold(canvas, t, { labels: list.map((n) => String(n.channel)), values: list.map((n) => n.score), flagged: list.map((n) => n.flagged), threshold: list[0].threshold, thresholdLabel: 'layer threshold', valueLabel: 'score', xTitle: 'channel' });
    const flagged = list.filter((n) => n.flagged).map((n) => n.channel);
    caption.textContent = `${key}: ${flagged.length} of ${list.length} channels flagged${flagged.length ? ` (${flagged.join(', ')})` : ''}; threshold ${list[0].threshold.toPrecision(4)}.`;
  };
  select.addEventListener('change', () => draw((select as unknown as { value: string }).value));
  queueMicrotask(() => draw(keys[0]));
  return section('neurons', 'Neuron scores per layer', select, box, caption);
}

export function fixSection(view: ReportView, t: Theme): HTMLElement | undefined {
  const fix = view.fix;
  if (!fix) return undefined;
  const { box, canvas } = chartBox(`accuracy ${pct(fix.before.accuracy)} to ${pct(fix.after.accuracy)}, attack success rate ${pct(fix.before.asr)} to ${pct(fix.after.asr)}`, 220);
  queueMicrotask(() => beforeAfter(canvas, t, [{ label: 'clean accuracy', before: fix.before.accuracy, after: fix.after.accuracy }, { label: 'attack success rate', before: fix.before.asr, after: fix.after.asr }]));
  const lines = [
    `Written by ${fix.method.toUpperCase()} from ${decodeURIComponent(fix.source.split('/').pop() ?? fix.source)}: outcome ${fix.outcome}.`,
    fix.headline,
    `Clean accuracy ${pct(fix.before.accuracy)} → ${pct(fix.after.accuracy)}; attack success rate ${pct(fix.before.asr)} → ${pct(fix.after.asr)}${fix.asrSource ? ` (measured on ${fix.asrSource})` : ''}.`,
    fix.pruned.length ? `Pruned ${fix.pruned.length} neurons: ${fix.pruned.slice(0, 24).map((p) => `${p.layer}[${p.channel}]`).join(', ')}${fix.pruned.length > 24 ? ', …' : ''}.` : '',
    ...fix.notes,
  ].filter(Boolean);
  return section('fix', 'Before and after the fix', box, ...lines.map((l) => h('p', { class: 'caption' }, l)));
}
