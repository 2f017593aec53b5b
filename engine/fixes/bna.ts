/**
 * BNA (Wang et al., "correcting the activation distribution alteration"): for each detected target t,
 * re-estimate the trigger on clean images of t's detected source classes, then correct the network
 * layer by layer so that the activation distribution of trigger-stamped images matches the clean
 * one (per channel, a fitted clamp((z − μ)/σ, υ, ω) in place of BN's normalisation). The result
 * is one ONNX model holding f, every g_t and the inference rule; no weight of f changes.
 */
import { imagesByClass } from '../analyses/class-images';
import { pairsAnalysis } from '../analyses/pairs';
import { positiveOption } from '../analyses/positive-option';
import { inputGradient } from '../analyses/reversal-gradient';
import { geometryOf, makeTask, runTasks } from '../analyses/reversal-run';
import { scheduleFor } from '../analyses/reversal-task';
import { defaultSchedulerOptions } from '../analyses/karm';
import { stampTrigger, type ReversedTrigger } from '../analyses/trigger';
import type { AnalysisOutput } from '../analyses/types';
import { subset, type Dataset } from '../data/types';
import { BackdoorLensError, usageError } from '../errors';
import { exposeTensors } from '../graph/surgery';
import { bnLayers, type BnLayer } from '../graph/patterns';
import type { OnnxModel } from '../graph/model';
import { imageInputOf } from '../evaluate';
import type { Runtime } from '../runtime/session';
import { defaultFitOptions, fitChannel, identityTransform, momentTransform, type FitOptions } from './bna-fit';
import { bnaModel, correctedNetwork, type LayerCorrection, type TargetCorrection } from './bna-graph';
import type { Fix, FixContext, FixResult } from './types';

/**
 * What one transform h covers: every unit of the feature map (channel and position, the paper's
 * "each neuron"), or a whole channel (BN's statistics are per channel).
 */
export type Granularity = 'unit' | 'channel';

export interface BnaOptions {
  fit: FitOptions;
  granularity: Granularity;
  /** Clean images per detected source class (paper: ~100). */
  imagesPerClass: number;
  /** Values per channel kept for the 'channel' granularity (evenly strided). */
  maxValues: number;
  /** A unit whose stamped activations stay within this of the clean ones (BN-normalised units) is left as it is. */
  minChange: number;
  /** Floor of the moment-matched scale b in (n − a)/b: 1 never sharpens a unit, only shifts or widens it. */
  minScale: number;
}

export function bnaOptions(o: Record<string, unknown>): BnaOptions {
  const granularity = String(o.granularity ?? 'unit');
  if (granularity !== 'unit' && granularity !== 'channel') throw usageError(`option bna.granularity must be unit or channel, got '${granularity}'`);
  const init = String(o.init ?? defaultFitOptions.init);
  if (init !== 'identity' && init !== 'moments') throw usageError(`option bna.init must be identity or moments, got '${init}'`);
  return {
    fit: {
      binWidth: positiveOption(o, 'bna', 'binWidth', defaultFitOptions.binWidth),
      tau: positiveOption(o, 'bna', 'tau', defaultFitOptions.tau),
      lr: positiveOption(o, 'bna', 'lr', defaultFitOptions.lr),
      iterations: Math.floor(positiveOption(o, 'bna', 'iterations', defaultFitOptions.iterations)),
      clip: positiveOption(o, 'bna', 'clip', defaultFitOptions.clip),
      init,
    },
    granularity,
    imagesPerClass: Math.floor(positiveOption(o, 'bna', 'imagesPerClass', 100)),
    maxValues: Math.floor(positiveOption(o, 'bna', 'maxValues', 50_000)),
    minChange: positiveOption(o, 'bna', 'minChange', 0.05),
    minScale: o.minScale === undefined ? 1 : Number(o.minScale),
  };
}

/** The BN-normalised activations (z − running_mean)/√(running_var + ε) of one layer: [N, C, ...spatial]. */
export async function normalisedActivations(model: OnnxModel, bn: BnLayer, reference: OnnxModel, data: Dataset, runtime: Runtime): Promise<{ values: Float32Array; spatial: number[] }> {
  const exposed = exposeTensors(model, [bn.input]);
  const session = await runtime.session(exposed);
  const input = imageInputOf(model).name;
  const rm = reference.initializer(bn.mean)!.data as Float32Array, rv = reference.initializer(bn.variance)!.data as Float32Array;
  const C = bn.channels;
  let values: Float32Array | undefined, spatial: number[] = [];
  await session.runBatched({ name: input, data: data.x, dims: data.dims }, 128, (out, start, count) => {
    const t = out[bn.input];
    const z = t.data as Float32Array;
    spatial = t.dims.slice(2) as number[];
    const per = z.length / count, hw = per / C;
    values ??= new Float32Array(data.n * per);
    for (let k = 0; k < z.length; k++) {
      const c = Math.floor((k % per) / hw);
      values[start * per + k] = (z[k] - rm[c]) / Math.sqrt(rv[c] + bn.epsilon);
    }
  }, { fetches: [bn.input] });
  return { values: values!, spatial };
}

/** The values one transform sees: unit j's value in every image, or channel c's values at every position (strided down). */
function unitValues(a: Float32Array, n: number, C: number, hw: number, granularity: Granularity, j: number, maxValues: number): Float64Array {
  const per = C * hw;
  if (granularity === 'unit') return Float64Array.from({ length: n }, (_, i) => a[i * per + j]);
  const total = n * hw, stride = Math.max(1, total / maxValues), count = Math.min(total, maxValues);
  return Float64Array.from({ length: count }, (_, k) => {
    const idx = Math.floor(k * stride), i = Math.floor(idx / hw);
    return a[i * per + j * hw + (idx % hw)];
  });
}

export interface TargetReport {
  target: number;
  sources: number[];
  triggerKind: ReversedTrigger['kind'];
  triggerSize: number;
  /** Per BN layer: units the trigger changed, and their summed TV distance before and after correction. */
  layers: { layer: string; units: number; changed: number; tvBefore: number; tvAfter: number }[];
}

/**
 * Fits g_t for one target: layer by layer, each layer's stamped activations taken under the
 * corrections so far. Units whose stamped values equal the clean ones (outside the trigger's
 * receptive field) keep BN's normalisation unchanged.
 */
export async function fitTarget(f: OnnxModel, clean: Dataset, stamped: Dataset, runtime: Runtime, o: BnaOptions, signal?: AbortSignal): Promise<{ layers: LayerCorrection[]; report: TargetReport['layers'] }> {
  const corrections: LayerCorrection[] = [];
  const report: TargetReport['layers'] = [];
  for (const bn of bnLayers(f)) {
    signal?.throwIfAborted();
    const reference = await normalisedActivations(f, bn, f, clean, runtime);
    const shifted = await normalisedActivations(correctedNetwork(f, corrections), bn, f, stamped, runtime);
    const C = bn.channels, hw = reference.values.length / clean.n / C;
    const units = o.granularity === 'unit' ? C * hw : C;
    let tvBefore = 0, tvAfter = 0, changed = 0;
    const transforms = Array.from({ length: units }, (_, j) => {
      const ref = unitValues(reference.values, clean.n, C, hw, o.granularity, j, o.maxValues);
      const trg = unitValues(shifted.values, stamped.n, C, hw, o.granularity, j, o.maxValues);
      if (ref.every((v, i) => Math.abs(v - trg[i]) <= o.minChange)) return identityTransform();
      changed++;
      const start = o.fit.init === 'moments' ? momentTransform(ref, trg, o.fit.clip, o.minScale) : identityTransform(o.fit.clip);
      const fit = fitChannel(ref, trg, o.fit, start);
      tvBefore += fit.tvBefore;
      tvAfter += fit.tvAfter;
      return fit.transform;
    });
    corrections.push({ bn: bn.node.name!, spatial: o.granularity === 'unit' ? reference.spatial : [], transforms });
    report.push({ layer: bn.name, units, changed, tvBefore, tvAfter });
  }
  return { layers: corrections, report };
}

/** The detection BNA starts from: the scan's 'pairs' result, or a fresh run of it. */
async function detection(ctx: FixContext): Promise<{ output: AnalysisOutput; ranHere: boolean }> {
  const previous = ctx.previous.get('pairs');
  if (previous) return { output: previous, ranHere: false };
  const pairOptions = Object.fromEntries(Object.entries(ctx.options).filter(([k]) => k.startsWith('pairs.')).map(([k, v]) => [k.slice(6), v]));
  return { output: await pairsAnalysis.run({ ...ctx, options: pairOptions }), ranHere: true };
}

export const bnaFix: Fix = {
  id: 'bna',
  title: 'BNA: activation-distribution correction with triggered-input flagging',
  needs: 'labelled',
  notApplicable(model) {
    return bnLayers(model.onnx).length === 0 ? 'the model has no BatchNormalization layers (BN folded or absent); BNA corrects BN statistics' : undefined;
  },
  async run(ctx): Promise<FixResult> {
    const data = ctx.data!;
    const o = bnaOptions(ctx.options);
    const notes: string[] = [];
    const { output, ranHere } = await detection(ctx);
    notes.push(ranHere ? 'ran the class-pair detector (pairs) first: no scan result was handed over' : 'used the class-pair detection of the scan');
    const found = ((output.state as { triggers?: ReversedTrigger[] } | undefined)?.triggers ?? []);
    const byTarget = new Map<number, { sources: Set<number>; kind: ReversedTrigger['kind'] }>();
    for (const t of found) {
      const entry = byTarget.get(t.target) ?? { sources: new Set<number>(), kind: t.kind };
      t.sources.forEach((s) => entry.sources.add(s));
      if (t.kind === 'patch') entry.kind = 'patch';
      byTarget.set(t.target, entry);
    }
    if (byTarget.size === 0) {
      notes.push('no backdoor detected: the model is written with f unchanged and trigger_detected always false');
      return { method: 'bna', model: bnaModel(ctx.model.onnx, []), pruned: [], notes, details: { targets: [] } };
    }
    const K = ctx.numClasses ?? Math.max(...found.flatMap((t) => [t.target, ...t.sources])) + 1;
    const byClass = imagesByClass(data, K, o.imagesPerClass, ctx.seed);
    const geometry = geometryOf(data);
    const gradient = await inputGradient(ctx.runtime, ctx.model.onnx);
    const corrections: TargetCorrection[] = [];
    const reports: TargetReport[] = [];
    let step = 0;
    for (const [target, { sources, kind }] of [...byTarget].sort((a, b) => a[0] - b[0])) {
      const sourceList = [...sources].sort((a, b) => a - b);
      const images = sourceList.flatMap((s) => byClass[s]);
      if (images.length === 0) throw new BackdoorLensError('bad-data', `no clean images of the source classes ${sourceList.join(', ')} of target ${target} in ${data.source}`, { file: data.source });
      ctx.progress(step / (2 * byTarget.size), `target ${target}: re-estimating the trigger on classes ${sourceList.join(', ')}`);
      const schedule = { ...scheduleFor(kind), batchSize: 32 };
      const task = makeTask(20_000 + target, kind, target, images, geometry, schedule, ctx.seed);
      await runTasks([task], { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: 1 }, data, gradient, { maxBatch: 512, signal: ctx.signal });
      if (!task.succeeded) throw new BackdoorLensError('internal', `could not re-estimate a trigger for target ${target} on classes ${sourceList.join(', ')} (no step reached ${schedule.successThreshold * 100}% success in ${task.step} steps)`);
      const trigger = task.objective.toTrigger(target, sourceList, task.bestParams);
      const clean = subset(data, images);
      const stamped = stampTrigger(trigger, clean);
      ctx.progress((step + 1) / (2 * byTarget.size), `target ${target}: fitting the activation correction`);
      const fit = await fitTarget(ctx.model.onnx, clean, stamped, ctx.runtime, o, ctx.signal);
      corrections.push({ target, layers: fit.layers });
      reports.push({ target, sources: sourceList, triggerKind: kind, triggerSize: task.size, layers: fit.report });
      notes.push(`target ${target}: trigger re-estimated on classes ${sourceList.join(', ')} (${kind}, size ${task.size.toFixed(2)}); per layer, units changed by the trigger and their summed TV distance: ${fit.report.map((l) => `${l.layer} ${l.changed}/${l.units} ${l.tvBefore.toFixed(1)}→${l.tvAfter.toFixed(1)}`).join(', ')}`);
      step += 2;
    }
    notes.push(`one transform per ${o.granularity === 'unit' ? 'unit (channel and position)' : 'channel'}, started at ${o.fit.init === 'moments' ? 'moment matching' : "BN's normalisation"}; TV refined with Adam lr ${o.fit.lr}, ${o.fit.iterations} iterations, clip bound ±${o.fit.clip}, τ ${o.fit.tau}, bin width ${o.fit.binWidth}`);
    return { method: 'bna', model: bnaModel(ctx.model.onnx, corrections), pruned: [], notes, details: { targets: reports } };
  },
};

