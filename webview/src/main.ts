/**
 * The report webview: renders a checkpoint's report view model (protocol/report-view.ts) with
 * @vscode-elements components and chart.js charts, and asks the extension to scan or fix.
 */
import '@vscode-elements/elements/dist/vscode-badge/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-collapsible/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import type { FromWebview, ReportView, ToWebview } from '../../protocol/report-view';
import { clearCharts, theme } from './charts';
import { h } from './dom';
import { anomalySection, evidenceSection, pairMatrixSection } from './detector-views';
import { compareSection, findingsSection, imagesSection, neuronsSection, rawSection, summarySection } from './sections';
import { triggerSection } from './trigger-viewer';
import css from './styles.css';

declare function acquireVsCodeApi(): { postMessage(m: FromWebview): void; setState(s: unknown): void; getState(): unknown };

const vscode = acquireVsCodeApi();
const app = document.getElementById('app')!;
// A constructed stylesheet, not an inline <style>: the strict CSP allows it.
const sheet = new CSSStyleSheet();
sheet.replaceSync(css);
document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];

let current: ReportView | undefined = vscode.getState() as ReportView | undefined;

const statusText: Record<ReportView['status'], string> = {
  'not-scanned': 'Not scanned yet',
  queued: 'Waiting for another scan to finish',
  scanning: 'Scanning',
  done: 'Scanned',
  failed: 'Could not be scanned',
  cancelled: 'Scan cancelled',
  stale: 'The file changed since its last scan',
};

function verdictBadge(view: ReportView): HTMLElement {
  const r = view.report;
  const text = !r ? statusText[view.status] : r.verdict === 'backdoored' ? `Backdoor: target ${r.targets.join(', ') || '?'}` : r.verdict === 'clean' ? 'No backdoor found' : r.data ? 'Inconclusive' : 'Inconclusive: no data';
  return h('vscode-badge', { id: 'verdict', variant: 'counter', class: `verdict verdict-${r?.verdict ?? view.status}` }, text);
}

const post = (m: FromWebview) => vscode.postMessage(m);

function button(id: string | undefined, label: string, onClick: () => void, attrs: Record<string, string | boolean | undefined> = {}): HTMLElement {
  const b = h('vscode-button', { ...(id ? { id } : {}), ...attrs }, label);
  b.addEventListener('click', onClick);
  return b;
}

function toolbar(view: ReportView): HTMLElement {
  const busy = view.status === 'scanning' || view.status === 'queued';
  const helpful = view.report ? view.offers.filter((o) => o.helps) : [];
  return h(
    'div',
    { class: 'toolbar' },
    button('scan', view.report ? 'Scan again' : 'Scan for backdoor', () => post({ type: 'scan' }), { disabled: busy }),
    ...helpful.map((o, i) => button(undefined, o.title, () => post({ type: 'fix', method: o.id }), { secondary: i > 0, disabled: busy, 'data-fix': o.id, title: o.title })),
    ...(view.report ? [button('other-fixes', helpful.length ? 'Other fixes…' : 'Fixes…', () => post({ type: 'fix', method: '' }), { secondary: true, disabled: busy })] : []),
    button('outline', 'Open outline', () => post({ type: 'openOutline' }), { secondary: true }),
    button('log', 'Show log', () => post({ type: 'showLog' }), { secondary: true }),
  );
}

const eta = (s: number | undefined) => (s === undefined ? '' : s < 10 ? ' — a few seconds left' : s < 90 ? ` — about ${Math.round(s / 5) * 5} s left` : ` — about ${Math.round(s / 60)} min left`);

/** What stops the scan from saying more, and the action that fixes it. */
function callout(view: ReportView): HTMLElement | undefined {
  if (view.status === 'scanning' || view.status === 'queued') {
    const percent = Math.round(100 * (view.fraction ?? 0));
    return h('div', { class: 'progress' }, h('vscode-progress-bar', { value: percent, max: 100 }), h('p', { id: 'stage' }, `${percent}% — ${view.message ?? statusText[view.status]}${eta(view.etaSeconds)}`));
  }
  if (view.status === 'failed') {
    const dataProblem = /\.(npz|npy|gz|idx)\b|data/i.test(view.message ?? '');
    return h(
      'div',
      { class: 'callout error', id: 'error' },
      h('p', {}, `Could not be scanned: ${view.message ?? 'the scan failed'}`),
      h('div', { class: 'toolbar' }, ...(dataProblem ? [button('choose-data', 'Choose clean data…', () => post({ type: 'chooseData' }))] : []), button(undefined, 'Show log', () => post({ type: 'showLog' }), { secondary: true })),
    );
  }
  if (!view.report) return h('p', { class: 'muted' }, `${statusText[view.status]}. Scan it to see its findings.`);
  if (!view.report.data) {
    const ran = view.report.methods.filter((m) => m.status === 'ran').map((m) => m.method);
    return h(
      'div',
      { class: 'callout', id: 'no-data' },
      h('p', {}, `This scan had no clean data, so only the data-free analyses ran (${ran.join(', ') || 'none'}); their result is below. The detectors need a few hundred clean labelled images (.npz with x and y, .npy, IDX, or a folder per class).`),
      h('div', { class: 'toolbar' }, button('choose-data', 'Choose clean data…', () => post({ type: 'chooseData' }))),
    );
  }
  return undefined;
}

function render(view: ReportView): void {
  clearCharts();
  const t = theme();
  const header = h('header', {}, h('h1', {}, view.fileName), verdictBadge(view));
  const parts: (HTMLElement | undefined)[] = [header, toolbar(view), callout(view)];
  const r = view.report;
  parts.push(compareSection(view, t, (uri) => post({ type: 'openFile', uri })));
  if (r) {
    parts.push(
      summarySection(view, r),
      evidenceSection(r),
      anomalySection(r, t),
      pairMatrixSection(r, t),
      triggerSection(view),
      neuronsSection(r, t),
      findingsSection(r, (code) => post({ type: 'openDoc', code })),
      imagesSection(view),
      rawSection(r),
    );
  }
  app.replaceChildren(...parts.filter((p): p is HTMLElement => !!p));
}

window.addEventListener('message', (e: MessageEvent<ToWebview>) => {
  if (e.data?.type !== 'view') return;
  current = e.data.view;
  vscode.setState(current);
  render(current);
});

// VS Code switches theme by changing the body's class and the variables on <html>: redraw the charts in the new colours.
const redraw = new MutationObserver(() => current && render(current));
redraw.observe(document.body, { attributes: true, attributeFilter: ['class'] });
redraw.observe(document.documentElement, { attributes: true, attributeFilter: ['style'] });

if (current) render(current);
vscode.postMessage({ type: 'ready' });
