/**
 * A reverse-engineered trigger, as the trigger-reversal detector hands it to fixes
 * (adaptive pruning, BNA). Values live in model-input space (after preprocessing).
 */
import { sampleSize, type Dataset } from '../../data/types';
import { warpSample } from './objectives';
import type { AnalysisOutput } from '../types';

export interface ReversedTrigger {
  /** 'patch': x' = (1−m)·x + m·pattern; 'perturbation': x' = clamp(x + v); 'warp': x resampled at p + d(p). */
  kind: 'patch' | 'perturbation' | 'warp';
  target: number;
  /** Source classes the trigger was reversed on (all non-target classes for a per-label trigger). */
  sources: number[];
  /** Per-pixel mask in [0,1], H·W values, shared by all channels (patch). */
  mask?: Float32Array;
  /** Pattern in model-input space, one sample's worth of values in the data layout (patch). */
  pattern?: Float32Array;
  /** Additive perturbation in model-input space, one sample's worth of values (perturbation). */
  perturbation?: Float32Array;
  /** Displacement field in pixels, H·W row displacements then H·W column displacements (warp). */
  flow?: Float32Array;
  /** Per-channel valid input range, used to clamp stamped images. */
  range: { min: number[]; max: number[] };
  /**
   * The largest trigger of this kind and mapping the detector would still flag (the screen's
   * median size over its threshold): a fix that re-reverses the trigger compares against it.
   */
  flaggedBelowSize?: number;
  /** Set on a copy a fix measures with: the factor it was grown by to reach flaggedBelowSize (fixes/triggers.ts). */
  atFlagBound?: number;
}

/** Stamps the trigger on every sample (or the given ones); returns a new dataset, labels kept. */
export function stampTrigger(trigger: ReversedTrigger, data: Dataset, indices?: ArrayLike<number>): Dataset {
  const per = sampleSize(data);
  const { layout, channels: C, height: H, width: W } = data.preprocess;
  const ids = indices ?? Array.from({ length: data.n }, (_, i) => i);
  const x = new Float32Array(ids.length * per);
  const channelOf = (j: number) => (layout === 'NCHW' ? Math.floor(j / (H * W)) : j % C);
  const pixelOf = (j: number) => (layout === 'NCHW' ? j % (H * W) : Math.floor(j / C));
  for (let s = 0; s < ids.length; s++) {
    const src = ids[s] * per, dst = s * per;
    if (trigger.kind === 'warp') {
      const hw = H * W;
      warpSample(data.preprocess, trigger.flow!.subarray(0, hw), trigger.flow!.subarray(hw), data.x, src, x, dst);
      continue;
    }
    for (let j = 0; j < per; j++) {
      const c = channelOf(j);
      let v: number;
      if (trigger.kind === 'patch') {
        const m = trigger.mask![pixelOf(j)];
        v = (1 - m) * data.x[src + j] + m * trigger.pattern![j];
      } else v = data.x[src + j] + trigger.perturbation![j];
      x[dst + j] = Math.min(Math.max(v, trigger.range.min[c]), trigger.range.max[c]);
    }
  }
  const pick = <T extends Int32Array | Uint8Array>(a: T | undefined, make: (n: number) => T) => {
    if (!a) return undefined;
    const out = make(ids.length);
    for (let i = 0; i < ids.length; i++) out[i] = a[ids[i]];
    return out;
  };
  return { ...data, source: `${data.source} (trigger for class ${trigger.target} stamped)`, n: ids.length, x, dims: [ids.length, ...data.dims.slice(1)], labels: pick(data.labels, (n) => new Int32Array(n)), poisoned: undefined };
}

/** What a trigger-reversal analysis leaves in AnalysisOutput.state. */
export interface TriggerState {
  triggers: ReversedTrigger[];
}

/** The analyses whose reversed triggers fixes use, in order of preference. */
export const TRIGGER_SOURCES = ['pairs', 'nc'] as const;

/** The reversed triggers an earlier scan handed over: those of 'pairs', else those of 'nc', else none. */
export function triggersFrom(previous: ReadonlyMap<string, AnalysisOutput>): ReversedTrigger[] {
  for (const id of TRIGGER_SOURCES) {
    const state = previous.get(id)?.state as Partial<TriggerState> | undefined;
    if (state && Array.isArray(state.triggers) && state.triggers.length > 0) return state.triggers;
  }
  return [];
}
