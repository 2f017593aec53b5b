/**
 * The trigger viewer: one row per flagged pair (or label), each kind of trigger drawn its own way.
 *  - patch: the mask as a heat map over a clean image, the pattern where the mask lets it through,
 *    the stamped image and the difference it makes;
 *  - perturbation: the signed change (red up, blue down), its size over the clean image, stamped,
 *    difference;
 *  - warp: the displacement field (hue = direction, brightness = length), stamped, difference;
 *  - any other kind: the clean image and a note that this view cannot draw it yet.
 * Canvases hold the images at their own resolution and are enlarged by whole factors with
 * nearest-neighbour sampling, so pixels stay square.
 */
import type { PixelImage, ReportView, TriggerView } from '../../protocol/report-view';
import { h } from './dom';
import { section } from './sections';

interface Pixels {
  w: number;
  h: number;
  c: number;
  data: Uint8Array;
  scale?: number;
}

function decode(img: PixelImage): Pixels {
  const bin = atob(img.data);
  const data = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) data[i] = bin.charCodeAt(i);
  return { w: img.width, h: img.height, c: img.channels, data, scale: img.scale };
}

/** The RGB of pixel i (grey images repeat their channel). */
const rgbAt = (p: Pixels, i: number): [number, number, number] => (p.c >= 3 ? [p.data[i * p.c], p.data[i * p.c + 1], p.data[i * p.c + 2]] : [p.data[i * p.c], p.data[i * p.c], p.data[i * p.c]]);

function canvasOf(w: number, hgt: number, fill: (rgba: Uint8ClampedArray) => void): HTMLCanvasElement {
  const canvas = h('canvas', { width: w, height: hgt, class: 'pixels' });
  const ctx = canvas.getContext('2d');
  if (ctx) {
    const image = ctx.createImageData(w, hgt);
    fill(image.data);
    ctx.putImageData(image, 0, 0);
  }
  return canvas;
}

function plain(p: Pixels): HTMLCanvasElement {
  return canvasOf(p.w, p.h, (out) => {
    for (let i = 0; i < p.w * p.h; i++) out.set([...rgbAt(p, i), 255], i * 4);
  });
}

/** A one-channel weight in [0, 1] as red over the image in grey, dimmed so the red reads. */
function overlay(base: Pixels, weight: (i: number) => number): HTMLCanvasElement {
  return canvasOf(base.w, base.h, (out) => {
    for (let i = 0; i < base.w * base.h; i++) {
      const [r, g, b] = rgbAt(base, i);
      const grey = 0.45 * (0.299 * r + 0.587 * g + 0.114 * b);
      const a = Math.min(Math.max(weight(i), 0), 1);
      out.set([grey + a * (255 - grey), grey * (1 - a) + a * 40, grey * (1 - a) + a * 40, 255], i * 4);
    }
  });
}

/** The pattern where the mask lets it through; transparent elsewhere (the tile's checkerboard shows). */
function maskedPattern(pattern: Pixels, mask: Pixels): HTMLCanvasElement {
  return canvasOf(pattern.w, pattern.h, (out) => {
    for (let i = 0; i < pattern.w * pattern.h; i++) out.set([...rgbAt(pattern, i), mask.data[i]], i * 4);
  });
}

/** |stamped − clean| per pixel (largest over channels), stretched to the full range. Returns the stretch factor too. */
function difference(clean: Pixels, stamped: Pixels): { canvas: HTMLCanvasElement; peak: number } {
  const n = clean.w * clean.h;
  const d = new Float32Array(n);
  let peak = 0;
  for (let i = 0; i < n; i++) {
    const a = rgbAt(clean, i), b = rgbAt(stamped, i);
    d[i] = Math.max(Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1]), Math.abs(a[2] - b[2]));
    peak = Math.max(peak, d[i]);
  }
  const canvas = canvasOf(clean.w, clean.h, (out) => {
    for (let i = 0; i < n; i++) {
      const v = peak > 0 ? d[i] / peak : 0;
      out.set([255 * Math.min(1, 2 * v), 255 * Math.max(0, 2 * v - 1), 0, 255], i * 4);
    }
  });
  return { canvas, peak: peak / 255 };
}

/** Signed values (128 = 0) averaged over channels: red up, blue down. */
function diverging(p: Pixels): HTMLCanvasElement {
  return canvasOf(p.w, p.h, (out) => {
    for (let i = 0; i < p.w * p.h; i++) {
      let s = 0;
      for (let c = 0; c < p.c; c++) s += (p.data[i * p.c + c] - 128) / 127;
      const v = Math.max(-1, Math.min(1, s / p.c));
      out.set(v >= 0 ? [255, 255 * (1 - v), 255 * (1 - v), 255] : [255 * (1 + v), 255 * (1 + v), 255, 255], i * 4);
    }
  });
}

const signedMagnitude = (p: Pixels) => (i: number) => {
  let m = 0;
  for (let c = 0; c < p.c; c++) m = Math.max(m, Math.abs(p.data[i * p.c + c] - 128) / 127);
  return m;
};

/** A flow field (dx, dy per pixel): hue from its direction, brightness from its length. */
function flowColours(p: Pixels): HTMLCanvasElement {
  return canvasOf(p.w, p.h, (out) => {
    for (let i = 0; i < p.w * p.h; i++) {
      const dx = (p.data[i * 2] - 128) / 127, dy = (p.data[i * 2 + 1] - 128) / 127;
      const hue = (Math.atan2(dy, dx) / (2 * Math.PI) + 1) % 1, v = Math.min(1, Math.hypot(dx, dy));
      const k = (n: number) => (n + hue * 6) % 6;
      const f = (n: number) => 255 * v * (1 - Math.max(0, Math.min(k(n), 4 - k(n), 1)));
      out.set([f(5), f(3), f(1), 255], i * 4);
    }
  });
}

const pct = (x: number) => `${Math.round(100 * x)}%`;

interface Box {
  x0: number;
  y0: number;
  /** Exclusive. */
  x1: number;
  y1: number;
}

/**
 * Where a trigger is: the box around the pixels whose weight is at least a fifth of the largest,
 * with 2 pixels of margin. None when the trigger covers most of the image (a blend, a warp).
 */
function triggerBox(weight: (i: number) => number, w: number, hgt: number): Box | undefined {
  let peak = 0;
  for (let i = 0; i < w * hgt; i++) peak = Math.max(peak, weight(i));
  if (!(peak > 0)) return undefined;
  const box = { x0: w, y0: hgt, x1: 0, y1: 0 };
  for (let i = 0; i < w * hgt; i++) {
    if (weight(i) < 0.2 * peak) continue;
    const x = i % w, y = Math.floor(i / w);
    box.x0 = Math.min(box.x0, x);
    box.y0 = Math.min(box.y0, y);
    box.x1 = Math.max(box.x1, x + 1);
    box.y1 = Math.max(box.y1, y + 1);
  }
  const padded = { x0: Math.max(0, box.x0 - 2), y0: Math.max(0, box.y0 - 2), x1: Math.min(w, box.x1 + 2), y1: Math.min(hgt, box.y1 + 2) };
  return (padded.x1 - padded.x0) * (padded.y1 - padded.y0) > 0.5 * w * hgt ? undefined : padded;
}

function crop(p: Pixels, b: Box): Pixels {
  const w = b.x1 - b.x0, hgt = b.y1 - b.y0;
  const data = new Uint8Array(w * hgt * p.c);
  for (let y = 0; y < hgt; y++) data.set(p.data.subarray(((b.y0 + y) * p.w + b.x0) * p.c, ((b.y0 + y) * p.w + b.x1) * p.c), y * w * p.c);
  return { w, h: hgt, c: p.c, data, scale: p.scale };
}

/** A close-up at a fixed enlargement (whole factor, about 140 pixels across), outside the zoom control. */
function closeUp(canvas: HTMLCanvasElement): HTMLCanvasElement {
  const factor = Math.max(1, Math.floor(140 / Math.max(canvas.width, canvas.height)));
  canvas.classList.add('close-up');
  canvas.style.width = `${canvas.width * factor}px`;
  canvas.style.height = `${canvas.height * factor}px`;
  canvas.dataset.factor = String(factor);
  return canvas;
}

const boxText = (b: Box) => `rows ${b.y0}–${b.y1 - 1}, columns ${b.x0}–${b.x1 - 1}`;

function tile(canvas: HTMLElement, label: string, kind: string): HTMLElement {
  return h('figure', { class: `tile tile-${kind}` }, canvas, h('figcaption', {}, label));
}

function placeholder(text: string): HTMLElement {
  return h('div', { class: 'placeholder', role: 'note' }, text);
}

function tilesOf(v: TriggerView): HTMLElement[] {
  const clean = v.clean && decode(v.clean);
  const stamped = v.stamped && decode(v.stamped);
  const tiles: HTMLElement[] = [];
  if (clean) tiles.push(tile(plain(clean), 'clean image', 'clean'));
  let box: Box | undefined;
  let closeUps: HTMLElement[] = [];
  if (v.kind === 'patch' && v.mask && v.pattern) {
    const mask = decode(v.mask), pattern = decode(v.pattern);
    if (clean) tiles.push(tile(overlay(clean, (i) => mask.data[i] / 255), 'mask over the image', 'mask'));
    tiles.push(tile(maskedPattern(pattern, mask), 'pattern × mask', 'pattern'));
    box = triggerBox((i) => mask.data[i], mask.w, mask.h);
    if (box) closeUps = [tile(closeUp(maskedPattern(crop(pattern, box), crop(mask, box))), `close-up: pattern × mask (${boxText(box)})`, 'pattern')];
  } else if (v.kind === 'perturbation' && v.perturbation) {
    const pert = decode(v.perturbation);
    tiles.push(tile(diverging(pert), `change (±${(pert.scale ?? 0).toFixed(3)}; red up, blue down)`, 'perturbation'));
    if (clean) tiles.push(tile(overlay(clean, signedMagnitude(pert)), 'its size over the image', 'mask'));
    box = triggerBox(signedMagnitude(pert), pert.w, pert.h);
    if (box) closeUps = [tile(closeUp(diverging(crop(pert, box))), `close-up: change (${boxText(box)})`, 'perturbation')];
  } else if (v.kind === 'warp' && v.flow) {
    const flow = decode(v.flow);
    tiles.push(tile(flowColours(flow), `displacement (≤ ${(flow.scale ?? 0).toFixed(2)} px; hue = direction)`, 'flow'));
  } else {
    tiles.push(tile(placeholder(`No drawing for '${v.kind}' triggers yet: their values are in the report (JSON below); the stamped image shows the effect where the engine can stamp it.`), `${v.kind} trigger`, 'unknown'));
  }
  if (stamped) tiles.push(tile(plain(stamped), 'stamped', 'stamped'));
  if (clean && stamped) {
    const d = difference(clean, stamped);
    tiles.push(tile(d.canvas, `difference (up to ${pct(d.peak)} of the range)`, 'difference'));
  }
  // A small trigger is a speck at any zoom that shows the whole image: its region, enlarged.
  if (box && stamped) closeUps.push(tile(closeUp(plain(crop(stamped, box))), 'close-up: stamped', 'stamped'));
  return [...tiles, ...closeUps];
}

function rowTitle(v: TriggerView): string {
  const where = v.pair ? `${v.pair.source} → ${v.pair.target}` : `label ${v.label ?? v.target}`;
  const how = v.via === 'transfer' ? ' · transfer (the outlier pairs’ trigger)' : v.via === 'outlier' ? ' · outlier' : '';
  return `${where} · ${v.method}${how}${v.size ? ` · ${v.size}` : ''}`;
}

/** Sets every pixel canvas to `factor` times its size. */
function applyZoom(root: HTMLElement, factor: number): void {
  root.querySelectorAll<HTMLCanvasElement>('canvas.pixels:not(.close-up)').forEach((c) => {
    c.style.width = `${c.width * factor}px`;
    c.style.height = `${c.height * factor}px`;
  });
  root.querySelectorAll<HTMLElement>('.placeholder').forEach((p) => {
    const size = `${Math.max(112, (Number(root.dataset.width) || 28) * factor)}px`;
    p.style.width = size;
    p.style.minHeight = size;
  });
  root.dataset.zoom = String(factor);
}

export function triggerSection(view: ReportView): HTMLElement | undefined {
  if (!view.triggers.length) return undefined;
  const width = view.triggers.find((v) => v.clean)?.clean?.width ?? 28;
  const initial = Math.max(1, Math.min(8, Math.round(112 / width)));
  const rows = view.triggers.map((v) => h('div', { class: 'trigger-row', 'data-kind': v.kind, 'data-pair': v.pair ? `${v.pair.source}-${v.pair.target}` : '' }, h('div', { class: 'trigger-title' }, rowTitle(v)), h('div', { class: 'tiles' }, ...tilesOf(v))));
  const body = h('div', { class: 'trigger-rows', 'data-width': width }, ...rows);
  const zoom = h('vscode-single-select', { 'aria-label': 'zoom' }, ...[1, 2, 3, 4, 6, 8, 12].map((f) => h('vscode-option', { value: String(f), selected: f === initial }, `×${f}`)));
  zoom.addEventListener('change', () => applyZoom(body, Number((zoom as unknown as { value: string }).value) || initial));
  applyZoom(body, initial);
  const more = view.triggersTotal && view.triggersTotal > view.triggers.length ? `Showing ${view.triggers.length} of ${view.triggersTotal} flagged pairs (outliers first).` : '';
  return section(
    'triggers',
    `Reversed triggers (${view.triggersTotal ?? view.triggers.length})`,
    h('div', { class: 'zoom' }, h('label', {}, 'Zoom (nearest neighbour) '), zoom),
    body,
    h('p', { class: 'caption' }, `Each row: a clean image of the source class, the trigger, the image with the trigger stamped, and what changed. ${more}`),
  );
}
