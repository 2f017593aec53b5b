/**
 * The images a reversed trigger is shown as: its mask, its pattern and one clean image with the
 * trigger stamped. A perturbation has no mask; its "mask" image is |v| per pixel (brightest where
 * the perturbation is largest) and its "pattern" image is v around mid-grey.
 */
import type { Dataset, ResolvedPreprocess } from '../../data/types';
import { sampleSize } from '../../data/types';
import { maskPng, samplePng } from '../../image/png';
import { stampTrigger, type ReversedTrigger } from './trigger';
import type { ArtifactImage } from '../types';

function perturbationImages(v: Float32Array, p: ResolvedPreprocess): { mask: Float32Array; pattern: Float32Array } {
  const { channels: C, height: H, width: W, layout } = p;
  const hw = H * W;
  let peak = 0;
  for (const x of v) peak = Math.max(peak, Math.abs(x));
  const scale = peak > 0 ? 1 / peak : 0;
  const mask = new Float32Array(hw);
  for (let j = 0; j < v.length; j++) {
    const pixel = layout === 'NCHW' ? j % hw : Math.floor(j / C);
    mask[pixel] = Math.max(mask[pixel], Math.abs(v[j]) * scale);
  }
  // The pattern image is built in pixel space: undo the normalisation so samplePng maps 0.5 + v/2peak back.
  const pattern = Float32Array.from(v, (x, j) => {
    const c = layout === 'NCHW' ? Math.floor(j / hw) : j % C;
    return (0.5 + 0.5 * x * scale - (p.mean[c] ?? 0)) / (p.std[c] ?? 1);
  });
  return { mask, pattern };
}

/** A warp shown as its displacement magnitude per pixel (brightest where the field moves most) and the magnitude as the pattern. */
function warpImages(flow: Float32Array, p: ResolvedPreprocess): { mask: Float32Array; pattern: Float32Array } {
  const hw = p.height * p.width;
  const mask = Float32Array.from({ length: hw }, (_, i) => Math.hypot(flow[i], flow[hw + i]));
  let peak = 0;
  for (const v of mask) peak = Math.max(peak, v);
  if (peak > 0) for (let i = 0; i < hw; i++) mask[i] /= peak;
  const pattern = new Float32Array(p.channels * hw);
  for (let j = 0; j < pattern.length; j++) {
    const c = p.layout === 'NCHW' ? Math.floor(j / hw) : j % p.channels;
    const pixel = p.layout === 'NCHW' ? j % hw : Math.floor(j / p.channels);
    pattern[j] = (mask[pixel] - (p.mean[c] ?? 0)) / (p.std[c] ?? 1);
  }
  return { mask, pattern };
}

export interface ArtifactNaming {
  /** File name stem, e.g. 'pair-3-0' or 'label-0'. */
  stem: string;
  pair?: { source: number; target: number };
  label?: number;
}

/** mask, pattern and stamped images of a trigger; `example` is a sample index in `data`. */
export function triggerArtifacts(trigger: ReversedTrigger, data: Dataset, example: number, naming: ArtifactNaming): ArtifactImage[] {
  const p = data.preprocess;
  const where = { ...(naming.pair ? { pair: naming.pair } : {}), ...(naming.label !== undefined ? { label: naming.label } : {}) };
  const images =
    trigger.kind === 'patch'
      ? { mask: trigger.mask!, pattern: trigger.pattern! }
      : trigger.kind === 'warp'
        ? warpImages(trigger.flow!, p)
        : perturbationImages(trigger.perturbation!, p);
  const stamped = stampTrigger(trigger, data, [example]);
  const per = sampleSize(data);
  return [
    { kind: 'mask', name: `${naming.stem}-mask.png`, png: maskPng(images.mask, p.height, p.width), ...where },
    { kind: 'pattern', name: `${naming.stem}-pattern.png`, png: samplePng(images.pattern, p), ...where },
    { kind: 'stamped', name: `${naming.stem}-stamped.png`, png: samplePng(stamped.x.subarray(0, per), p), ...where },
  ];
}
