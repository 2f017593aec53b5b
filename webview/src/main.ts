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
import { anomalySection, findingsSection, fixSection, maxMarginSection, neuronsSection, pairMatrixSection, summarySection, triggersSection } from './sections';
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
  const text = !r ? statusText[view.status] : r.verdict === 'backdoored' ? `Backdoor: target ${r.targets.join(', ') || '?'}` : r.verdict === 'clean' ? 'No backdoor found' : 'Inconclusive';
  return h('vscode-badge', { id: 'verdict', variant: 'counter', class: `verdict verdict-${r?.verdict ?? view.status}` }, text);
}

function toolbar(view: ReportView): HTMLElement {
  const busy = view.status === 'scanning' || view.status === 'queued';
  const scan = h('vscode-button', { id: 'scan', disabled: busy }, view.report ? 'Scan again' : 'Scan for backdoor');
  scan.addEventListener('click', () => vscode.postMessage({ type: 'scan' }));
  const outline = h('vscode-button', { id: 'outline', secondary: true }, 'Open outline');
  outline.addEventListener('click', () => vscode.postMessage({ type: 'openOutline' }));
  const fixes = view.report
    ? view.fixes.map((f) => {
        const b = h('vscode-button', { secondary: true, disabled: !!f.notApplicable || busy, title: f.notApplicable ?? f.title, 'data-fix': f.id }, f.id === 'bna' ? 'Apply BNA correction' : `Prune with ${f.id.toUpperCase()}`);
        b.addEventListener('click', () => vscode.postMessage({ type: 'fix', method: f.id }));
        return b;
      })
    : [];
  return h('div', { class: 'toolbar' }, scan, outline, ...fixes);
}

function render(view: ReportView): void {
  clearCharts();
  const t = theme();
  const header = h('header', {}, h('h1', {}, view.fileName), verdictBadge(view));
  const parts: (HTMLElement | undefined)[] = [header, toolbar(view)];
  if (view.status === 'scanning' || view.status === 'queued') {
    parts.push(h('div', { class: 'progress' }, h('vscode-progress-bar', { value: Math.round(100 * (view.fraction ?? 0)), max: 100 }), h('p', { id: 'stage' }, `${Math.round(100 * (view.fraction ?? 0))}% — ${view.message ?? statusText[view.status]}`)));
  } else if (view.status === 'failed') {
    parts.push(h('p', { id: 'error', class: 'error' }, view.message ?? 'The scan failed.'));
  } else if (!view.report) {
    parts.push(h('p', { class: 'muted' }, `${statusText[view.status]}. Scan it to see its findings.`));
  }
  const r = view.report;
  parts.push(fixSection(view, t));
  if (r) parts.push(summarySection(view, r), findingsSection(r), anomalySection(r, t), maxMarginSection(r, t), pairMatrixSection(r), triggersSection(view), neuronsSection(r, t));
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
