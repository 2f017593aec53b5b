/**
 * MM-BD (Wang, Xiang, Miller, Kesidis, IEEE S&P 2024): data-free backdoor detection from the
 * maximum achievable logit margin per class.
 *
 * For every class k, r_k = max over valid inputs x of f_k(x) − max_{j≠k} f_j(x), estimated by
 * gradient ascent from random starts. A backdoor target owns a region (the trigger) where the
 * network answers k with a margin no natural class reaches, so its r_k stands out. A gamma
 * distribution is fitted to the K − 1 smaller statistics and the largest is tested with the
 * order-statistic p-value 1 − F(r_max)^K; p below the threshold flags class argmax r_k.
 *
 * As the authors' code (univ_bd.py): starts uniform over the input range, plain gradient ascent
 * with step 0.01 on the sum of the starts' margins, stop when that sum changes by < 1e-5
 * (relative) or after the step limit. Deviations are in DEVIATIONS below and docs/findings/BL006.md.
 */
import { expectationFromInput, type PreprocessSpec } from '../../data';
import { BackdoorLensError, usageError } from '../../errors';
import { imageInputOf, predict } from '../../evaluate';
import type { Finding, LabelResult, VerdictEvidence } from '../../report/types';
import { fitGamma, maxOrderPValue, type GammaFit } from '../stats/gamma';
import { madAnomaly } from '../stats/mad';
import { positiveOption } from '../positive-option';
import { SeededRandom } from '../stats/random';
import type { BatchGradient } from '../reversal/batch';
import { inputGradient } from '../reversal/gradient';
import { channelIndex, sampleValues, type SampleGeometry } from '../reversal/objectives';
import { MMBD_THRESHOLD } from '../thresholds';
import type { OptionSpecs } from '../../method-options';
import type { Analysis, AnalysisContext, AnalysisOutput } from '../types';

export interface MmbdOptions {
  /** Random starts per class (the authors' code: 30; here 10). */
  starts: number;
  /** Gradient-ascent steps per class at most (the authors' code: 300; here 100). */
  steps: number;
  /** Step size in pixel units, the input range scaled to [0, 1] (the authors' code: plain SGD 0.01; here Adam 0.1). */
  lr: number;
  /** Stop a class when the sum of its margins changes by less than this, relative (the authors' code: 1e-5). */
  tolerance: number;
  /** Flag when the order-statistic p-value is below this. */
  threshold: number;
  /** Images per gradient call at most (bounds memory); classes are run in groups that fit. */
  maxBatch: number;
  /** 'sgd': plain ascent u += lr·g (the authors' code); 'adam': Adam on u (β 0.9, 0.999, the default here). */
  optimizer: 'sgd' | 'adam';
}

export const defaultMmbdOptions: Omit<MmbdOptions, 'threshold'> = { starts: 10, steps: 100, lr: 0.1, tolerance: 1e-5, maxBatch: 512, optimizer: 'adam' };

/** The authors' settings (univ_bd.py), for `--option mmbd.preset=reference`. */
export const referenceMmbdOptions: Omit<MmbdOptions, 'threshold'> = { starts: 30, steps: 300, lr: 0.01, tolerance: 1e-5, maxBatch: 512, optimizer: 'sgd' };

/** The fewest classes the test works with: the gamma null has three parameters, fitted to the K − 1 smaller statistics. */
export const MMBD_MIN_CLASSES = 4;

const DEVIATIONS = [
  'Adam (lr 0.1, pixel units) for 100 steps from 10 starts instead of plain SGD (lr 0.01) for 300 steps from 30 starts: a ninth of the gradients, and closer to the maximum (SGD is still climbing at step 300); --option mmbd.preset=reference runs the authors\' settings',
  'projected ascent (clamp after each step) instead of clamping inside the forward pass, whose zero gradient freezes a pixel that crossed the range',
  'the statistic is the best margin any start reached at any step, not only at the last step',
];

export function mmbdOptions(options: Record<string, unknown>): MmbdOptions {
  const { preset, optimizer } = options;
  if (preset !== undefined && preset !== 'default' && preset !== 'reference') throw usageError(`option mmbd.preset must be default or reference, got '${String(preset)}'`);
  if (optimizer !== undefined && optimizer !== 'adam' && optimizer !== 'sgd') throw usageError(`option mmbd.optimizer must be adam or sgd, got '${String(optimizer)}'`);
  const base = preset === 'reference' ? referenceMmbdOptions : defaultMmbdOptions;
  const read = (key: keyof MmbdOptions, fallback: number) => positiveOption(options, 'mmbd', key, fallback);
  return {
    starts: Math.floor(read('starts', base.starts)),
    steps: Math.floor(read('steps', base.steps)),
    lr: read('lr', base.lr),
    tolerance: read('tolerance', base.tolerance),
    threshold: read('threshold', MMBD_THRESHOLD.value),
    maxBatch: Math.floor(read('maxBatch', base.maxBatch)),
    optimizer: (optimizer as MmbdOptions['optimizer'] | undefined) ?? base.optimizer,
  };
}

/**
 * The model's input geometry and its valid range without data: stored pixels are 0..1 (uint8/255),
 * or 0..255·scale when a scale is given, then (v − mean)/std per channel.
 */
export function dataFreeGeometry(ctx: Pick<AnalysisContext, 'model'>, spec: PreprocessSpec = {}): SampleGeometry {
  const e = expectationFromInput(imageInputOf(ctx.model.onnx), spec);
  const top = spec.scale !== undefined ? 255 * spec.scale : 1;
  const at = (list: number[] | undefined, c: number, fallback: number) => (list ? (list.length === 1 ? list[0] : list[c]) : fallback);
  for (const [name, list] of [['mean', spec.mean], ['std', spec.std]] as const) {
    if (list && list.length !== 1 && list.length !== e.channels) throw usageError(`${name} has ${list.length} values but the model takes ${e.channels} channels`);
  }
  if (spec.std?.some((s) => s === 0)) throw usageError('std must not contain 0');
  const min: number[] = [], max: number[] = [];
  for (let c = 0; c < e.channels; c++) {
    const mean = at(spec.mean, c, 0), std = at(spec.std, c, 1);
    const a = (0 - mean) / std, b = (top - mean) / std;
    min.push(Math.min(a, b));
    max.push(Math.max(a, b));
  }
  return { channels: e.channels, height: e.height, width: e.width, layout: e.layout, range: { min, max } };
}

async function numClassesOf(ctx: AnalysisContext, geometry: SampleGeometry): Promise<number> {
  if (ctx.numClasses) return ctx.numClasses;
  const n = sampleValues(geometry);
  const dims = geometry.layout === 'NCHW' ? [1, geometry.channels, geometry.height, geometry.width] : [1, geometry.height, geometry.width, geometry.channels];
  const probe = { source: 'a blank probe image', n: 1, x: new Float32Array(n), dims, preprocess: { layout: geometry.layout, channels: geometry.channels, height: geometry.height, width: geometry.width, scale: 1, mean: [0], std: [1], resized: false, sourceLayout: geometry.layout } };
  return (await predict(ctx.model.onnx, probe, ctx.runtime)).numClasses;
}

export interface MarginSearch {
  /** r_k per class: the largest margin any start reached. */
  statistics: number[];
  /** Steps each class ran. */
  steps: number[];
  /** Images through a forward and backward pass. */
  sampleGradients: number;
  calls: number;
}

/**
 * Gradient ascent on the margin of every class from `starts` random points, classes batched
 * together (as many as fit in maxBatch images per call).
 */
export async function searchMargins(gradient: BatchGradient, geometry: SampleGeometry, classes: number, o: Omit<MmbdOptions, 'threshold'>, seed: number, signal?: AbortSignal, progress?: (fraction: number, stage: string) => void, trace?: (step: number, k: number, margins: Float64Array) => void): Promise<MarginSearch> {
  const n = sampleValues(geometry), S = o.starts;
  const channelOf = channelIndex(geometry);
  const lo = Float32Array.from(channelOf, (c) => geometry.range.min[c]);
  const width = Float32Array.from(channelOf, (c) => geometry.range.max[c] - geometry.range.min[c]);
  const dimsOf = (count: number) => (geometry.layout === 'NCHW' ? [count, geometry.channels, geometry.height, geometry.width] : [count, geometry.height, geometry.width, geometry.channels]);
  const statistics = new Array<number>(classes).fill(-Infinity);
  const stepsRun = new Array<number>(classes).fill(0);
  let sampleGradients = 0, calls = 0;
  const perGroup = Math.max(1, Math.floor(o.maxBatch / S));
  for (let first = 0; first < classes; first += perGroup) {
    const group = Array.from({ length: Math.min(perGroup, classes - first) }, (_, i) => first + i);
    // u: the starts in pixel units [0, 1] per value; the model sees lo + u·width.
    const u = group.map((k) => {
      const rng = new SeededRandom(SeededRandom.derive(seed, 0x6d6d6264, k));
      return Float32Array.from({ length: S * n }, () => rng.next());
    });
    const adam = o.optimizer === 'adam' ? group.map(() => ({ m: new Float32Array(S * n), v: new Float32Array(S * n) })) : undefined;
    const lastLoss = group.map(() => 1000);
    const running = group.map(() => true);
    for (let step = 0; step < o.steps; step++) {
      signal?.throwIfAborted();
      const active = group.map((_, g) => g).filter((g) => running[g]);
      if (active.length === 0) break;
      const count = active.length * S;
      const x = new Float32Array(count * n);
      const labels = new Int32Array(count);
      for (let a = 0; a < active.length; a++) {
        const src = u[active[a]];
        for (let s = 0; s < S; s++) {
          const base = (a * S + s) * n, from = s * n;
          for (let j = 0; j < n; j++) x[base + j] = lo[j] + src[from + j] * width[j];
          labels[a * S + s] = group[active[a]];
        }
      }
      const r = await gradient({ x, dims: dimsOf(count), labels, weights: new Float32Array(count).fill(1) });
      sampleGradients += count;
      calls++;
      const K = r.logits.length / count;
      for (let a = 0; a < active.length; a++) {
        const g = active[a], k = group[g], target = u[g];
        let loss = 0;
        const margins = new Float64Array(S);
        const state = adam?.[g];
        const c1 = 1 - 0.9 ** (step + 1), c2 = 1 - 0.999 ** (step + 1);
        for (let s = 0; s < S; s++) {
          const i = a * S + s, row = i * K;
          let other = -Infinity;
          for (let j = 0; j < K; j++) if (j !== k && r.logits[row + j] > other) other = r.logits[row + j];
          const margin = r.logits[row + k] - other;
          margins[s] = margin;
          loss -= margin;
          if (margin > statistics[k]) statistics[k] = margin;
          // Ascent in pixel units: ∂margin/∂u = ∂margin/∂x · width; then back into [0, 1].
          const base = i * n, to = s * n;
          if (state) {
            for (let j = 0; j < n; j++) {
              const grad = r.dx[base + j] * width[j];
              const m = (state.m[to + j] = 0.9 * state.m[to + j] + 0.1 * grad);
              const w = (state.v[to + j] = 0.999 * state.v[to + j] + 0.001 * grad * grad);
              const v = target[to + j] + (o.lr * (m / c1)) / (Math.sqrt(w / c2) + 1e-8);
              target[to + j] = v < 0 ? 0 : v > 1 ? 1 : v;
            }
          } else {
            for (let j = 0; j < n; j++) {
              const v = target[to + j] + o.lr * r.dx[base + j] * width[j];
              target[to + j] = v < 0 ? 0 : v > 1 ? 1 : v;
            }
          }
        }
        trace?.(step, k, margins);
        stepsRun[k] = step + 1;
        if (Math.abs(lastLoss[g] - loss) / Math.abs(lastLoss[g]) < o.tolerance) running[g] = false;
        lastLoss[g] = loss;
      }
      progress?.((first + (group.length * (step + 1)) / o.steps) / classes, `margin ascent, classes ${first}–${first + group.length - 1}, step ${step + 1}/${o.steps}`);
    }
  }
  return { statistics, steps: stepsRun, sampleGradients, calls };
}

export interface MarginTest {
  target: number;
  /** The largest statistic. */
  max: number;
  null: GammaFit | undefined;
  pValue: number;
  /** MAD anomaly index of each statistic (what the authors' code prints beside the p-value). */
  anomalyIndex: number[];
}

/** The order-statistic test of the largest statistic against a gamma fitted to the others. */
export function testMargins(statistics: readonly number[]): MarginTest {
  let target = 0;
  for (let k = 1; k < statistics.length; k++) if (statistics[k] > statistics[target]) target = k;
  const max = statistics[target];
  const rest = statistics.filter((_, k) => k !== target);
  const fit = fitGamma(rest);
  // No spread among the others: the largest is an outlier exactly when it is above them.
  const pValue = fit ? maxOrderPValue(fit, max, statistics.length) : max > rest[0] ? 0 : 1;
  return { target, max, null: fit, pValue, anomalyIndex: madAnomaly(statistics).anomalyIndex };
}

const fmtP = (p: number) => (p === 0 ? '0' : p < 1e-3 ? p.toExponential(1) : p.toFixed(3));

/** MM-BD's options; the defaults are this tool's (defaultMmbdOptions), `preset=reference` the authors'. */
export const MMBD_OPTIONS: OptionSpecs = {
  preset: { type: 'string', doc: "'reference': the authors' settings (SGD, 30 starts, 300 steps) in place of this tool's" },
  optimizer: { type: 'string', default: defaultMmbdOptions.optimizer, doc: 'adam or sgd (the ascent on each class margin)' },
  starts: { type: 'integer', default: defaultMmbdOptions.starts, doc: 'random starts per class' },
  steps: { type: 'integer', default: defaultMmbdOptions.steps, doc: 'ascent steps per start' },
  lr: { type: 'number', default: defaultMmbdOptions.lr, doc: 'ascent step size (pixel units)' },
  tolerance: { type: 'number', default: defaultMmbdOptions.tolerance, doc: 'stop a start once its margin gains less than this' },
  threshold: { type: 'number', default: MMBD_THRESHOLD.value, doc: 'p-value below which the largest margin is flagged' },
  maxBatch: { type: 'integer', default: defaultMmbdOptions.maxBatch, doc: 'images per gradient call at most (bounds memory)' },
};

export const mmbdAnalysis: Analysis = {
  id: 'mmbd',
  title: 'MM-BD maximum margin (data-free)',
  needs: 'none',
  detector: true,
  // On the development zoo its margins are led by one natural class (bag) on clean and
  // backdoored models alike (docs/findings/BL006.md): with labelled data trigger reversal decides.
  runsByDefault: 'without-data',
  options: MMBD_OPTIONS,
  async run(ctx): Promise<AnalysisOutput> {
    const o = mmbdOptions(ctx.options);
    const geometry = dataFreeGeometry(ctx, ctx.preprocess);
    const K = await numClassesOf(ctx, geometry);
    if (K < MMBD_MIN_CLASSES) {
      throw new BackdoorLensError('unsupported-model', `MM-BD needs a classifier with at least ${MMBD_MIN_CLASSES} classes (its gamma null is fitted to the K − 1 smaller margins); ${ctx.model.path} has ${K} output${K === 1 ? '' : 's'}`, { file: ctx.model.path });
    }
    const gradient = await inputGradient(ctx.runtime, ctx.model.onnx, { kind: 'margin' });
    const search = await searchMargins(gradient, geometry, K, o, ctx.seed, ctx.signal, ctx.progress);
    const t = testMargins(search.statistics);
    const flagged = t.pValue < o.threshold;
    const labels: LabelResult[] = search.statistics.map((r, k) => ({ label: k, statistic: r, anomalyIndex: t.anomalyIndex[k], flagged: flagged && k === t.target, method: 'mmbd' }));
    const sorted = [...search.statistics].sort((a, b) => b - a);
    const comparison = flagged ? '<' : '≥';
    const evidence: VerdictEvidence = {
      method: 'mmbd',
      statistic: 'order-statistic p-value of the largest per-class maximum margin under a gamma fitted to the other classes',
      value: t.pValue,
      threshold: o.threshold,
      direction: 'below',
      thresholdSource: o.threshold === MMBD_THRESHOLD.value ? MMBD_THRESHOLD.source : '--option mmbd.threshold',
      flagged,
      targets: flagged ? [t.target] : [],
      attackType: null,
      summary: `mmbd: class ${t.target} maximum margin ${t.max.toFixed(1)} (next ${sorted[1].toFixed(1)}), p ${fmtP(t.pValue)} ${comparison} ${o.threshold}`,
    };
    const findings: Finding[] = flagged
      ? [{
          severity: 'error',
          code: 'BL006',
          method: 'mmbd',
          message: `Class ${t.target} reaches an anomalously large logit margin without data: ${t.max.toFixed(1)} against ${sorted[1].toFixed(1)} for the next class (p ${fmtP(t.pValue)} < ${o.threshold}, gamma null of the other ${K - 1}). Target class ${t.target}.`,
          location: { label: t.target },
        }]
      : [];
    const fitText = t.null ? `gamma null shape ${t.null.shape.toPrecision(3)}, loc ${t.null.loc.toFixed(2)}, scale ${t.null.scale.toPrecision(3)}` : 'no gamma fit (the other margins are all equal)';
    const maxSteps = Math.max(...search.steps), minSteps = Math.min(...search.steps);
    return {
      evidence: [evidence],
      threshold: o.threshold,
      findings,
      labels,
      targets: flagged ? [t.target] : [],
      attackType: null,
      backdoored: flagged,
      gradientEvaluations: search.sampleGradients,
      notes: [
        `${K} classes × ${o.starts} random starts, ${minSteps === maxSteps ? maxSteps : `${minSteps}–${maxSteps}`} ${o.optimizer === 'adam' ? 'Adam' : 'SGD'} steps of ${o.lr} (${search.sampleGradients} image gradients in ${search.calls} batched calls); input range ${geometry.range.min.map((v, c) => `[${v.toFixed(3)}, ${geometry.range.max[c].toFixed(3)}]`).join(' ')}`,
        `maximum margins ${search.statistics.map((r) => r.toFixed(2)).join(', ')}; ${fitText}; p ${fmtP(t.pValue)} for class ${t.target}`,
        `deviations from the authors' code: ${(o.optimizer === 'adam' ? DEVIATIONS : DEVIATIONS.slice(1)).join('; ')}`,
      ],
    };
  },
};
