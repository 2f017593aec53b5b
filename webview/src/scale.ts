/**
 * One fixed colour scale for a detector statistic, in units of the threshold the report used:
 * a value at a tenth of its threshold is pale blue on every model, at the threshold yellow, beyond
 * it red. So a clean model's matrix looks cool and a backdoored one hot, whatever their maxima.
 */
import type { Theme } from './charts';
import { h } from './dom';

type Rgba = [number, number, number, number];

let probe: CanvasRenderingContext2D | null | undefined;

/** Any CSS colour the canvas understands → RGBA. */
export function rgba(colour: string): Rgba {
  probe ??= document.createElement('canvas').getContext('2d');
  if (!probe) return [128, 128, 128, 1];
  probe.fillStyle = '#000000';
  probe.fillStyle = colour;
  const v = String(probe.fillStyle);
  if (v.startsWith('#')) return [parseInt(v.slice(1, 3), 16), parseInt(v.slice(3, 5), 16), parseInt(v.slice(5, 7), 16), 1];
  const m = v.match(/[\d.]+/g)?.map(Number) ?? [128, 128, 128, 1];
  return [m[0], m[1], m[2], m[3] ?? 1];
}

const css = ([r, g, b, a]: Rgba) => `rgba(${Math.round(r)}, ${Math.round(g)}, ${Math.round(b)}, ${a.toFixed(3)})`;
const mix = (a: Rgba, b: Rgba, t: number): Rgba => a.map((x, i) => x + (b[i] - x) * t) as Rgba;

/**
 * The colour of `value` on the fixed scale of `threshold` (direction 'below': smaller is worse):
 * below the threshold one cool hue that deepens towards it, at the threshold yellow, beyond it
 * orange to red (saturated at 1.5 thresholds).
 */
export function scaleColour(t: Theme, value: number, threshold: number, direction: 'above' | 'below' = 'above'): string {
  const r = direction === 'above' ? value / (threshold || 1) : (threshold || 1) / Math.max(value, 1e-12);
  const [br, bg, bb] = rgba(t.blue), yellow = rgba(t.yellow), red = rgba(t.red);
  if (!(r > 0)) return css([br, bg, bb, 0.06]);
  if (r < 1) return css([br, bg, bb, 0.06 + 0.64 * r]);
  return css(mix([yellow[0], yellow[1], yellow[2], 0.95], [red[0], red[1], red[2], 1], Math.min((r - 1) / 0.5, 1)));
}

const num = (x: number) => Number(x.toPrecision(3)).toString();

/** The legend of the scale: swatches at 0, ½, 1 and 1.5 thresholds, and the threshold with its source. */
export function scaleLegend(t: Theme, threshold: number, source: string, extra: HTMLElement[] = []): HTMLElement {
  const swatch = (share: number, label: string) => {
    const s = h('span', { class: 'swatch' });
    // Through the CSSOM: the webview's CSP refuses inline style attributes.
    s.style.background = scaleColour(t, share * threshold, threshold);
    return h('span', { class: 'legend-item' }, s, label);
  };
  return h(
    'div',
    { class: 'legend', 'data-threshold': threshold },
    h('span', { class: 'legend-title' }, 'Colour scale (fixed, in units of the threshold):'),
    swatch(0.1, '≈0'),
    swatch(0.5, `${num(threshold / 2)} (½ threshold)`),
    swatch(1, `${num(threshold)} (threshold)`),
    swatch(1.5, `≥ ${num(1.5 * threshold)}`),
    h('span', { class: 'legend-item' }, h('span', { class: 'swatch threshold-line' }), `threshold ${num(threshold)} — ${source}`),
    ...extra,
  );
}
