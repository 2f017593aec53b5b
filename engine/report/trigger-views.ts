/**
 * The reversed triggers a scan left in memory, as the report view's trigger viewer draws them:
 * pixel-space images (clean example, stamped example, mask and pattern, or the perturbation, or a
 * warp's flow field), one per flagged pair or label. Kinds this module does not know still get a
 * row with the clean image, so the viewer can say what it cannot draw.
 */
import { indicesOfClass, sampleSize, type Dataset, type ResolvedPreprocess } from '../data/types';
import type { AnalysisOutput } from '../analyses/types';
import { stampTrigger, type ReversedTrigger } from '../analyses/reversal/trigger';
import type { ScanReport } from './types';

/**
 * An image in pixel space for the trigger viewer: `width`×`height`×`channels` bytes, row-major,
 * channels last, base64. A signed image (a perturbation) stores 128 + 127·v/scale.
 */
export interface PixelImage {
  width: number;
  height: number;
  channels: number;
  data: string;
  /** Signed images: the pixel value (0–1 range) that ±127 stands for. */
  scale?: number;
}

/** One reversed trigger, for the trigger viewer: one row per flagged pair (or label). */
export interface TriggerView {
  /** 'patch' (mask + pattern), 'perturbation' (additive), 'warp' (a flow field), or a kind this viewer may not know. */
  kind: string;
  /** The detector and objective, e.g. 'pairs:patch', 'nc'. */
  method: string;
  target: number;
  pair?: { source: number; target: number };
  label?: number;
  /** How the pair was flagged ('transfer': the trigger is the one reversed for the outlier pairs). */
  via?: 'outlier' | 'transfer';
  /** A clean image of the source class, and the same image with the trigger. */
  clean?: PixelImage;
  stamped?: PixelImage;
  /** patch: the mask, one channel, 255 = fully the pattern. */
  mask?: PixelImage;
  /** patch: the pattern in pixel space. */
  pattern?: PixelImage;
  /** perturbation: the additive change in pixel space, signed. */
  perturbation?: PixelImage;
  /** warp: the displacement per pixel (dx, dy), signed, in pixels. */
  flow?: PixelImage;
  /** e.g. '|m|₁ = 2.9' or '‖v‖₂ = 0.41'. */
  size?: string;
}

/** Rows the viewer gets at most (an all-to-all backdoor on 10 classes flags 90 pairs). */
export const TRIGGER_LIMIT = 24;

const clamp01 = (v: number) => Math.min(Math.max(v, 0), 1);

function pack(width: number, height: number, channels: number, bytes: Uint8Array, scale?: number): PixelImage {
  return { width, height, channels, data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'), ...(scale !== undefined ? { scale } : {}) };
}

/** One sample in model-input space and layout → bytes, channels last, undoing the normalisation. */
export function samplePixels(values: ArrayLike<number>, p: ResolvedPreprocess): PixelImage {
  const { channels: C, height: H, width: W, layout } = p;
  const out = new Uint8Array(C * H * W);
  for (let c = 0; c < C; c++) {
    for (let i = 0; i < H * W; i++) {
      const v = layout === 'NCHW' ? values[c * H * W + i] : values[i * C + c];
      out[i * C + c] = Math.round(255 * clamp01(v * (p.std[c] ?? 1) + (p.mean[c] ?? 0)));
    }
  }
  return pack(W, H, C, out);
}

/** A signed field (model-input space, values per channel) → 128 + 127·v/scale, scale = max |v| in pixel units. */
function signedPixels(values: ArrayLike<number>, p: ResolvedPreprocess, channels = p.channels, unit: (c: number) => number = (c) => p.std[c] ?? 1, layout = p.layout): PixelImage {
  const { height: H, width: W } = p;
  const at = (c: number, i: number) => (layout === 'NCHW' ? values[c * H * W + i] : values[i * channels + c]) * unit(c);
  let scale = 0;
  for (let c = 0; c < channels; c++) for (let i = 0; i < H * W; i++) scale = Math.max(scale, Math.abs(at(c, i)));
  const out = new Uint8Array(channels * H * W);
  for (let c = 0; c < channels; c++) for (let i = 0; i < H * W; i++) out[i * channels + c] = Math.round(128 + (scale > 0 ? (127 * at(c, i)) / scale : 0));
  return pack(W, H, channels, out, scale);
}

function maskPixels(mask: ArrayLike<number>, p: ResolvedPreprocess): PixelImage {
  const out = Uint8Array.from({ length: p.height * p.width }, (_, i) => Math.round(255 * clamp01(mask[i])));
  return pack(p.width, p.height, 1, out);
}

/** What a detector left in its state: ReversedTrigger-shaped objects (kinds this file may not know included). */
function triggersOf(output: AnalysisOutput): ReversedTrigger[] {
  const state = output.state as { triggers?: unknown } | undefined;
  const list = Array.isArray(state?.triggers) ? state!.triggers : [];
  return list.filter((t): t is ReversedTrigger => !!t && typeof t === 'object' && typeof (t as ReversedTrigger).kind === 'string' && typeof (t as ReversedTrigger).target === 'number');
}

function sizeText(t: ReversedTrigger): string | undefined {
  if (t.kind === 'patch' && t.mask) return `|m|₁ = ${t.mask.reduce((a, b) => a + b, 0).toFixed(1)}`;
  if (t.kind === 'perturbation' && t.perturbation) return `‖v‖₂ = ${Math.hypot(...t.perturbation).toFixed(3)}`;
  return undefined;
}

function viewOf(id: string, t: ReversedTrigger, report: ScanReport, data: Dataset): TriggerView {
  const p = data.preprocess;
  const pair = t.sources.length === 1 ? { source: t.sources[0], target: t.target } : undefined;
  const reported = pair ? report.pairs.find((r) => r.source === pair.source && r.target === pair.target && r.flagged && (r.method ?? id).startsWith(id) && (!r.method?.includes(':') || r.method.endsWith(`:${t.kind}`))) : undefined;
  // A per-target trigger (trigger reversal's target screen) is reported as its flagged label.
  const label = pair ? undefined : report.labels.find((l) => l.label === t.target && l.flagged && (l.method ?? id).startsWith(id) && (!l.method?.includes(':') || l.method.endsWith(`:${t.kind}`)));
  const view: TriggerView = {
    kind: t.kind,
    method: reported?.method ?? label?.method ?? (id === 'pairs' ? `pairs:${t.kind}` : id),
    target: t.target,
    ...(pair ? { pair } : { label: t.target }),
    ...(reported?.via ? { via: reported.via } : {}),
  };
  const size = sizeText(t);
  if (size) view.size = size;
  const example = t.sources.map((s) => indicesOfClass(data, s)[0]).find((i) => i !== undefined);
  if (example !== undefined) {
    const per = sampleSize(data);
    view.clean = samplePixels(data.x.subarray(example * per, (example + 1) * per), p);
    try {
      view.stamped = samplePixels(stampTrigger(t, data, [example]).x, p);
    } catch {
      // A kind stampTrigger does not know: the viewer shows the clean image and says so.
    }
  }
  if (t.kind === 'patch' && t.mask && t.pattern) {
    view.mask = maskPixels(t.mask, p);
    view.pattern = samplePixels(t.pattern, p);
  } else if (t.kind === 'perturbation' && t.perturbation) {
    view.perturbation = signedPixels(t.perturbation, p);
  } else {
    // A warp trigger's displacement field: (dx, dy) per pixel, in pixels, channel-first.
    const flow = (t as unknown as { flow?: unknown }).flow;
    if (flow instanceof Float32Array && flow.length === 2 * p.height * p.width) view.flow = signedPixels(flow, p, 2, () => 1, 'NCHW');
  }
  return view;
}

/** The trigger viewer's rows: outlier pairs first, then pairs found by transfer, at most `limit`. */
export function triggerViews(outputs: ReadonlyMap<string, AnalysisOutput>, report: ScanReport, data: Dataset | undefined, limit = TRIGGER_LIMIT): { views: TriggerView[]; total: number } {
  if (!data) return { views: [], total: 0 };
  const all: { id: string; t: ReversedTrigger }[] = [];
  for (const [id, output] of outputs) for (const t of triggersOf(output)) all.push({ id, t });
  const views = all.map(({ id, t }) => viewOf(id, t, report, data));
  views.sort((a, b) => Number(a.via === 'transfer') - Number(b.via === 'transfer'));
  return { views: views.slice(0, limit), total: views.length };
}
