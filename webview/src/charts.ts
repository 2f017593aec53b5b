/**
 * Charts (chart.js) coloured from the VS Code theme's --vscode-* variables, redrawn when the theme
 * changes. Animations are off: the numbers are the point, and screenshots stay stable.
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
} from 'chart.js';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, Tooltip, Legend);

export interface Theme {
  foreground: string;
  grid: string;
  red: string;
  blue: string;
  green: string;
  yellow: string;
  orange: string;
  purple: string;
  font: string;
}

export function theme(): Theme {
  const css = getComputedStyle(document.body);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  return {
    foreground: v('--vscode-charts-foreground', v('--vscode-foreground', '#cccccc')),
    grid: v('--vscode-charts-lines', 'rgba(128,128,128,0.35)'),
    red: v('--vscode-charts-red', '#f14c4c'),
    blue: v('--vscode-charts-blue', '#3794ff'),
    green: v('--vscode-charts-green', '#89d185'),
    yellow: v('--vscode-charts-yellow', '#cca700'),
    orange: v('--vscode-charts-orange', '#d18616'),
    purple: v('--vscode-charts-purple', '#b180d7'),
    font: v('--vscode-font-family', 'sans-serif'),
  };
}

const charts = new Set<Chart>();

/** Destroys the charts of the previous render. */
export function clearCharts(): void {
  for (const c of charts) c.destroy();
  charts.clear();
}

function base(t: Theme, yTitle: string, xTitle: string) {
  const axis = (title: string) => ({
    ticks: { color: t.foreground, font: { family: t.font } },
    grid: { color: t.grid },
    title: { display: !!title, text: title, color: t.foreground, font: { family: t.font } },
  });
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false as const,
    plugins: { legend: { labels: { color: t.foreground, font: { family: t.font } } }, tooltip: { enabled: true } },
    scales: { x: axis(xTitle), y: axis(yTitle) },
  };
}

export interface ThresholdBars {
  labels: string[];
  values: number[];
  /** Colour of each bar (a fixed scale), or flagged bars red and the rest blue. */
  colours?: string[];
  flagged: boolean[];
  threshold?: number;
  thresholdLabel?: string;
  valueLabel: string;
  xTitle: string;
  /** The y axis reaches at least this far (e.g. 1.5× the threshold), so a low chart is seen as low. */
  yMin?: number;
  yMax?: number;
}

/**
 * Bars with the dashed threshold line the report used. The threshold drawn is written on the
 * canvas (data-threshold) from the chart's own dataset, so what a reader sees can be checked.
 */
export function barsWithThreshold(canvas: HTMLCanvasElement, t: Theme, opts: ThresholdBars): Chart {
  const split = !opts.colours;
  const bars = split
    ? [
        { type: 'bar' as const, label: `${opts.valueLabel}, flagged`, data: opts.values.map((v, i) => (opts.flagged[i] ? v : null)), backgroundColor: t.red, borderColor: t.red, borderWidth: 1, grouped: false, pointStyle: 'rect' as const },
        { type: 'bar' as const, label: opts.valueLabel, data: opts.values.map((v, i) => (opts.flagged[i] ? null : v)), backgroundColor: t.blue, borderColor: t.blue, borderWidth: 1, grouped: false, pointStyle: 'rect' as const },
      ]
    : [{ type: 'bar' as const, label: opts.valueLabel, data: opts.values, backgroundColor: opts.colours!, borderColor: opts.flagged.map((f) => (f ? t.red : 'transparent')), borderWidth: opts.flagged.map((f) => (f ? 2 : 0)) }];
  const options = base(t, opts.valueLabel, opts.xTitle);
  const config = {
    type: 'bar',
    data: {
      labels: opts.labels,
      datasets: [
        ...bars,
        ...(opts.threshold !== undefined
          ? [{ type: 'line' as const, label: opts.thresholdLabel ?? 'threshold', data: opts.labels.map(() => opts.threshold!), borderColor: t.yellow, backgroundColor: t.yellow, borderDash: [6, 4], borderWidth: 2, pointRadius: 0, pointStyle: 'line' as const }]
          : []),
      ],
    },
    options: {
      ...options,
      scales: { ...options.scales, y: { ...options.scales.y, ...(opts.yMin !== undefined ? { suggestedMax: opts.yMin } : {}), ...(opts.yMax !== undefined ? { max: opts.yMax } : {}) } },
      // Scale-coloured bars have no single legend colour: their legend (scale and threshold) is drawn below the chart.
      plugins: { ...options.plugins, legend: { ...options.plugins.legend, display: split, labels: { ...options.plugins.legend.labels, usePointStyle: true } } },
    },
  };
  const chart = new Chart(canvas, config as unknown as ChartConfiguration);
  const line = chart.data.datasets.find((d) => d.type === 'line');
  if (line) canvas.dataset.threshold = String(line.data[0]);
  charts.add(chart);
  return chart;
}

/** Axis labels longer than this are cut with an ellipsis; the tooltip and the table beside the chart show them whole. */
const axisLabelChars = 42;

export function shortLabel(label: string, max = axisLabelChars): string {
  return label.length <= max ? label : `${label.slice(0, max - 1).trimEnd()}…`;
}

/**
 * Before/after bars for accuracy and attack success rate after a fix, one row per measure:
 * horizontal, so the measures' long names (a trigger, its classes, its size) read on one line.
 */
export function beforeAfter(canvas: HTMLCanvasElement, t: Theme, rows: { label: string; before: number | null; after: number | null }[]): Chart {
  const b = base(t, '', 'percent');
  const config: ChartConfiguration<'bar', (number | null)[], string> = {
    type: 'bar',
    data: {
      labels: rows.map((r) => r.label),
      datasets: [
        { label: 'before the fix', data: rows.map((r) => (r.before === null ? null : 100 * r.before)), backgroundColor: t.orange },
        { label: 'after the fix', data: rows.map((r) => (r.after === null ? null : 100 * r.after)), backgroundColor: t.green },
      ],
    },
    options: {
      ...b,
      indexAxis: 'y',
      scales: {
        x: { ...b.scales.x, min: 0, max: 100 },
        y: { ...b.scales.y, ticks: { ...b.scales.y.ticks, autoSkip: false, callback: (_value: unknown, index: number) => shortLabel(rows[index]?.label ?? '') } },
      },
    },
  };
  const chart = new Chart(canvas, config as ChartConfiguration);
  charts.add(chart);
  return chart;
}
