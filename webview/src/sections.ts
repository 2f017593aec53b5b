/** The report view's general sections: summary, findings, neuron scores, the compare view, the raw report. */
import type { NeuronScore, ScanReport } from '../../engine';
import type { Measurement } from '../../protocol/lsp';
import type { ReportView } from '../../protocol/report-view';
import { verdictLine } from '../../protocol/verdict-text';
import { barsWithThreshold, beforeAfter, type Theme } from './charts';
import { h, pct } from './dom';

export function section(id: string, title: string, ...body: (Node | string)[]): HTMLElement {
  const el = h('vscode-collapsible', { id, title, open: true, class: 'section' });
  el.append(h('div', { class: 'section-body' }, ...body));
  return el;
}

export function chartBox(label: string, height = 260): { box: HTMLElement; canvas: HTMLCanvasElement } {
  const canvas = h('canvas', { role: 'img', 'aria-label': label });
  const box = h('div', { class: 'chart' }, canvas);
  box.style.height = `${height}px`;
  return { box, canvas };
}

export function summarySection(view: ReportView, report: ScanReport): HTMLElement {
  const rows: [string, string][] = [
    ['Verdict', verdictLine(report)],
    ['Model', `${report.model.format}, ${report.model.numClasses ?? '?'} classes, input ${report.model.input.name} [${report.model.input.dims.join(', ')}], BatchNorm ${report.model.bn}`],
    ['Data', report.data ? `${report.data.n} ${report.data.kind} samples${report.data.labelled ? ' with labels' : ''} from ${report.data.path}` : 'none (data-free methods only)'],
    ['Scanned', `${new Date(report.createdAt).toLocaleString()} in ${((report.timings.total ?? 0) / 1000).toFixed(1)} s, seed ${report.seed}`],
  ];
  const table = h('table', { class: 'kv' }, ...rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', { 'data-field': k.toLowerCase() }, v))));
  const methods = h(
    'table',
    { class: 'grid' },
    h('tr', {}, h('th', {}, 'method'), h('th', {}, 'status'), h('th', {}, 'time'), h('th', {}, 'notes')),
    ...report.methods.map((m) => h('tr', {}, h('td', {}, m.method), h('td', { class: `status-${m.status}` }, m.status), h('td', { class: 'num' }, m.status === 'ran' ? `${(m.ms / 1000).toFixed(1)} s` : ''), h('td', {}, [m.reason, ...(m.notes ?? [])].filter(Boolean).join(' · ')))),
  );
  return section('summary', 'Summary', table, report.methods.length ? methods : h('p', {}, 'No analysis ran.'), h('p', { class: 'muted' }, view.fileName));
}

export function findingsSection(report: ScanReport, openDoc: (code: string) => void): HTMLElement {
  if (!report.findings.length) return section('findings', 'Findings', h('p', {}, 'No findings.'));
  const codeLink = (code: string) => {
    const a = h('a', { href: '#', title: `What ${code} means and what to do` }, code);
    a.addEventListener('click', (e) => {
      e.preventDefault();
      openDoc(code);
    });
    return a;
  };
  return section(
    'findings',
    `Findings (${report.findings.length})`,
    h(
      'table',
      { class: 'grid' },
      h('tr', {}, h('th', {}, 'severity'), h('th', {}, 'code'), h('th', {}, 'where'), h('th', {}, 'message')),
      ...report.findings.map((f) =>
        h('tr', { class: `sev-${f.severity}` }, h('td', {}, f.severity), h('td', {}, codeLink(f.code)), h('td', {}, f.location?.layer ?? (f.location?.pair ? `${f.location.pair.source}→${f.location.pair.target}` : f.location?.label !== undefined ? `class ${f.location.label}` : '')), h('td', {}, f.message)),
      ),
    ),
    h('p', { class: 'caption' }, report.verdict === 'backdoored' ? 'Neuron flags point at layers the backdoor may use.' : 'Without a detector verdict, neuron flags are information: they alone say nothing about a backdoor.'),
  );
}

/** Per-layer neuron scores against the layer's threshold; pick the layer and method. */
export function neuronsSection(report: ScanReport, t: Theme): HTMLElement | undefined {
  if (!report.neurons.length) return undefined;
  const groups = new Map<string, NeuronScore[]>();
  for (const n of report.neurons) {
    const key = `${n.method} · ${n.layer}`;
    groups.set(key, [...(groups.get(key) ?? []), n]);
  }
  const keys = [...groups.keys()].sort((a, b) => groups.get(b)!.filter((n) => n.flagged).length - groups.get(a)!.filter((n) => n.flagged).length || a.localeCompare(b));
  const select = h('vscode-single-select', { 'aria-label': 'layer and method' }, ...keys.map((key) => h('vscode-option', { value: key }, `${key} (${groups.get(key)!.filter((n) => n.flagged).length} flagged)`)));
  const { box, canvas } = chartBox('neuron scores against the threshold', 240);
  const caption = h('p', { class: 'caption' });
  let chart: ReturnType<typeof barsWithThreshold> | undefined;
  const draw = (key: string) => {
    chart?.destroy();
    const list = [...groups.get(key)!].sort((a, b) => a.channel - b.channel);
    const method = report.methods.find((m) => m.method === list[0].method);
    chart = barsWithThreshold(canvas, t, { labels: list.map((n) => String(n.channel)), values: list.map((n) => n.score), flagged: list.map((n) => n.flagged), threshold: list[0].threshold, thresholdLabel: `layer threshold ${list[0].threshold.toPrecision(4)}`, valueLabel: 'score', xTitle: 'channel' });
    const flagged = list.filter((n) => n.flagged).map((n) => n.channel);
    caption.textContent = `${key}: ${flagged.length} of ${list.length} channels flagged${flagged.length ? ` (${flagged.join(', ')})` : ''}; flagged ${method?.direction === 'below' ? 'at or below' : 'above'} ${list[0].threshold.toPrecision(4)}. ${report.verdict === 'backdoored' ? '' : 'No detector found a backdoor: these flags are information.'}`;
  };
  select.addEventListener('change', () => draw((select as unknown as { value: string }).value));
  queueMicrotask(() => draw(keys[0]));
  return section('neurons', 'Neuron scores per layer', select, box, caption);
}

const diff = (before: number | null | undefined, after: number | null | undefined) =>
  before === null || before === undefined || after === null || after === undefined ? '' : `${after >= before ? '+' : '−'}${(100 * Math.abs(after - before)).toFixed(1)} pts`;

/** Original vs fixed: the outcome, clean accuracy, attack success (overall and per measured attack). */
export function compareSection(view: ReportView, t: Theme, open: (uri: string) => void): HTMLElement | undefined {
  const fix = view.fix;
  if (!fix) return undefined;
  const b: Measurement = fix.before, a: Measurement = fix.after;
  const rows: { label: string; before: number | null; after: number | null; kind: 'accuracy' | 'asr' }[] = [
    { label: 'clean accuracy', before: b.accuracy, after: a.accuracy, kind: 'accuracy' },
    { label: `attack success${fix.asrSource ? ` (${fix.asrSource})` : ''}`, before: b.asr, after: a.asr, kind: 'asr' },
  ];
  for (const attack of fix.attacks) rows.push({ label: `attack success, ${attack.what}${attack.n ? ` (${attack.n} images)` : ''}`, before: attack.before, after: attack.after, kind: 'asr' });
  const table = h(
    'table',
    { class: 'grid compare' },
    h('tr', {}, h('th', {}, ''), h('th', {}, 'original'), h('th', {}, 'fixed'), h('th', {}, 'change')),
    ...rows.map((r) => h('tr', { 'data-kind': r.kind }, h('th', {}, r.label), h('td', { class: 'num' }, pct(r.before)), h('td', { class: 'num' }, pct(r.after)), h('td', { class: 'num' }, diff(r.before, r.after)))),
  );
  const { box, canvas } = chartBox(`original vs fixed: accuracy ${pct(b.accuracy)} to ${pct(a.accuracy)}, attack success rate ${pct(b.asr)} to ${pct(a.asr)}`, 70 + 44 * rows.length);
  queueMicrotask(() => beforeAfter(canvas, t, rows));
  const source = h('a', { href: '#' }, decodeURIComponent(fix.source.split('/').pop() ?? fix.source));
  source.addEventListener('click', (e) => {
    e.preventDefault();
    open(fix.source);
  });
  const lines = [
    fix.pruned.length ? `Pruned ${fix.pruned.length} neurons: ${fix.pruned.slice(0, 24).map((p) => `${p.layer}[${p.channel}]`).join(', ')}${fix.pruned.length > 24 ? ', …' : ''}.` : '',
    ...fix.notes,
  ].filter(Boolean);
  // The headline already reads '<method>: <outcome> — <what was measured>'; the colour carries the outcome.
  const outcome = h('p', { class: `outcome outcome-${fix.outcome}`, id: 'fix-outcome' }, fix.headline);
  return section('fix', 'Original vs fixed', h('p', {}, `Written by ${fix.method.toUpperCase()} from `, source, '.'), outcome, table, box, ...perClassAccuracy(fix, t), ...lines.map((l) => h('p', { class: 'caption' }, l)));
}

/** Classes shown at most in the per-class chart: those whose accuracy changed most. */
const perClassShown = 20;

/** Per-class clean accuracy before and after, with the class that lost most named. */
function perClassAccuracy(fix: NonNullable<ReportView['fix']>, t: Theme): HTMLElement[] {
  const classes = fix.perClass ?? [];
  if (!classes.length) return [];
  const drop = (c: (typeof classes)[number]) => c.before - c.after;
  const worst = classes.reduce((w, c) => (drop(c) > drop(w) ? c : w));
  const shown = classes.length <= perClassShown ? classes : [...classes].sort((a, b) => Math.abs(drop(b)) - Math.abs(drop(a))).slice(0, perClassShown).sort((a, b) => a.label - b.label);
  const what = classes.length > shown.length ? `the ${shown.length} of ${classes.length} classes that changed most` : 'each class';
  const caption = drop(worst) > 0 ? `Largest drop: class ${worst.label}, ${pct(worst.before)} → ${pct(worst.after)} (${worst.n} held-out images).` : 'No class lost accuracy.';
  const { box, canvas } = chartBox(`clean accuracy of ${what} before and after the fix; ${caption}`, 70 + 26 * shown.length);
  box.id = 'fix-per-class';
  queueMicrotask(() => beforeAfter(canvas, t, shown.map((c) => ({ label: `class ${c.label} (${c.n})`, before: c.before, after: c.after }))));
  return [h('h3', {}, `Clean accuracy per class (${what})`), box, h('p', { class: 'caption', id: 'fix-per-class-caption' }, caption)];
}

/** Images the analyses wrote that the trigger viewer does not draw. */
export function imagesSection(view: ReportView): HTMLElement | undefined {
  if (!view.images.length) return undefined;
  const figures = view.images.map((img) => {
    const what = img.pair ? `${img.kind} ${img.pair.source}→${img.pair.target}` : img.label !== undefined ? `${img.kind} for class ${img.label}` : img.kind;
    return h('figure', {}, h('img', { src: img.dataUri, alt: what }), h('figcaption', {}, what));
  });
  return section('images', 'Other images', h('div', { class: 'gallery' }, ...figures));
}

/** The whole report as JSON, for reading every number (and copying). */
export function rawSection(report: ScanReport): HTMLElement {
  const el = section('raw', 'Report (JSON)', h('pre', { id: 'report-json' }, JSON.stringify(report, null, 2)));
  el.removeAttribute('open');
  return el;
}
