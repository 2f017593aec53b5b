/**
 * STRIP (Gao et al. 2019), a test-time check for triggered inputs: blend the input with random
 * clean images; a trigger keeps dominating the prediction, so the mean prediction entropy of the
 * blends stays low. The threshold is the entropy quantile of clean inputs at a chosen false
 * rejection rate. Blending happens in model-input space, which is the same as blending pixels
 * because preprocessing is affine per channel.
 */
import { sampleSize, type Dataset } from '../data/types';
import { imageInputOf } from '../evaluate';
import type { OnnxModel } from '../graph/model';
import type { OptionSpecs } from '../method-options';
import type { Runtime } from '../runtime/session';
import { SeededRandom } from './stats/random';
import { softmaxRows } from './stats/softmax';

export interface StripOptions {
  /** Blends per input (STRIP's N; the paper uses up to 100). */
  perturbations: number;
  /** Weight of the input in the blend; the rest goes to the clean image. */
  alpha: number;
  /** False rejection rate on clean data that sets the threshold. */
  frr: number;
  seed: number;
  batchSize: number;
  signal?: AbortSignal;
}

export const defaultStripOptions: StripOptions = { perturbations: 20, alpha: 0.5, frr: 0.01, seed: 0, batchSize: 256 };

/** The options `eval --strip` takes (`--option strip.perturbations=50`, "methodOptions": { "strip": … }). */
export const STRIP_OPTIONS: OptionSpecs = {
  perturbations: { type: 'integer', default: defaultStripOptions.perturbations, doc: 'clean images each input is blended with (STRIP\'s N)' },
  alpha: { type: 'number', default: defaultStripOptions.alpha, doc: "weight of the input in each blend; the rest is the clean image's" },
  frr: { type: 'number', default: defaultStripOptions.frr, doc: 'false rejection rate on the clean set that sets the entropy threshold' },
};

function entropyOfLogits(logits: Float32Array, offset: number, k: number): number {
  let h = 0;
  for (const p of softmaxRows(logits.subarray(offset, offset + k), k)) if (p > 0) h -= p * Math.log(p);
  return h;
}

/**
 * Mean blend entropy per input. `exclude(i, j)` skips blending input i with clean image j (used
 * when the inputs are the clean images themselves).
 */
export async function stripEntropies(model: OnnxModel, inputs: Dataset, clean: Dataset, runtime: Runtime, options: StripOptions, exclude?: (i: number, j: number) => boolean): Promise<Float64Array> {
  const per = sampleSize(inputs);
  if (sampleSize(clean) !== per) throw new Error(`${clean.source} images have ${sampleSize(clean)} values; ${inputs.source} images have ${per}`);
  const session = await runtime.session(model);
  const input = imageInputOf(model).name;
  const output = model.outputs()[0].name;
  const rng = new SeededRandom(options.seed);
  const N = options.perturbations;
  const out = new Float64Array(inputs.n);
  const perBatch = Math.max(1, Math.floor(options.batchSize / N));
  for (let start = 0; start < inputs.n; start += perBatch) {
    options.signal?.throwIfAborted();
    const count = Math.min(perBatch, inputs.n - start);
    const x = new Float32Array(count * N * per);
    for (let i = 0; i < count; i++) {
      for (let b = 0; b < N; b++) {
        let j = rng.int(clean.n);
        for (let tries = 0; exclude?.(start + i, j) && tries < 10; tries++) j = rng.int(clean.n);
        const dst = (i * N + b) * per, src = (start + i) * per, cln = j * per;
        for (let e = 0; e < per; e++) x[dst + e] = options.alpha * inputs.x[src + e] + (1 - options.alpha) * clean.x[cln + e];
      }
    }
    const r = await session.run({ [input]: { dtype: 'float32', dims: [count * N, ...inputs.dims.slice(1)], data: x } }, [output]);
    const logits = r[output].data as Float32Array;
    const k = logits.length / (count * N);
    for (let i = 0; i < count; i++) {
      let h = 0;
      for (let b = 0; b < N; b++) h += entropyOfLogits(logits, (i * N + b) * k, k);
      out[start + i] = h / N;
    }
  }
  return out;
}

/** The q-quantile (linear interpolation) of the values. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const s = Float64Array.from(values).sort();
  if (s.length === 0) return NaN;
  const pos = Math.min(Math.max(q, 0), 1) * (s.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export interface StripResult {
  threshold: number;
  /** Blends per input. */
  perturbations: number;
  /** Mean blend entropy per input. */
  entropies: Float64Array;
  /** 1 where the entropy is below the threshold (the input looks triggered). */
  flagged: Uint8Array;
  /** Share of inputs flagged. */
  share: number;
  /** The clean images' own share above threshold is 1 − frr by construction; this is the calibration set. */
  calibration: { source: string; n: number; frr: number };
}

/** Calibrates on `clean` (each clean image blended with other clean images), then tests `inputs`. */
export async function strip(model: OnnxModel, inputs: Dataset, clean: Dataset, runtime: Runtime, options: Partial<StripOptions> = {}): Promise<StripResult> {
  const o = { ...defaultStripOptions, ...options };
  const cleanH = await stripEntropies(model, clean, clean, runtime, { ...o, seed: SeededRandom.derive(o.seed, 1) }, (i, j) => i === j);
  const threshold = quantile(cleanH, o.frr);
  const entropies = await stripEntropies(model, inputs, clean, runtime, { ...o, seed: SeededRandom.derive(o.seed, 2) });
  const flagged = Uint8Array.from(entropies, (h) => (h < threshold ? 1 : 0));
  return { threshold, perturbations: o.perturbations, entropies, flagged, share: flagged.reduce((a, b) => a + b, 0) / Math.max(1, inputs.n), calibration: { source: clean.source, n: clean.n, frr: o.frr } };
}
