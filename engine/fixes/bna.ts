/**
 * BNA (Wang et al., "correcting the activation distribution alteration"): for each detected target t,
 * re-estimate the trigger on clean images of t's detected source classes, then correct the network
 * layer by layer so that the activation distribution of trigger-stamped images matches the clean
 * one (per channel, a fitted clamp((z − μ)/σ, υ, ω) in place of BN's normalisation). The result
 * is one ONNX model holding f, every g_t and the inference rule; no weight of f changes.
 */
import type { OptionSpecs } from '../method-options';
import { imagesByClass } from '../analyses/reversal/class-images';
import { positiveOption } from '../analyses/positive-option';
import type { BatchGradient } from '../analyses/reversal/batch';
import { inputGradient } from '../analyses/reversal/gradient';
import { stampTrigger, type ReversedTrigger } from '../analyses/reversal/trigger';
import { subset, type Dataset } from '../data/types';
import { BackdoorLensError, usageError } from '../errors';
import { truncatedTo } from '../graph/split';
import { bnLayers, type BnLayer } from '../graph/patterns';
import type { OnnxModel } from '../graph/model';
import { imageInputOf } from '../evaluate';
import type { Runtime } from '../runtime/session';
import { defaultFitOptions, fitChannel, identityTransform, momentTransform, type FitOptions } from './bna-fit';
import { bnaModel, correctedNetwork, type LayerCorrection, type TargetCorrection } from './bna-graph';
import { concatSamples } from './measure';
import { REESTIMABLE, reestimate } from './reestimate';
import { atFlagBound, byTarget, stampable, triggerLabel } from './triggers';
import type { Fix, FixRun } from './types';

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
  /** Re-estimate a patch / perturbation trigger on all of the target's source classes (the paper's step) besides the detector's triggers. */
  reestimate: boolean;
  /** Also fit to each trigger grown to the detector's flag bound (the size the fix is graded at). */
  grown: boolean;
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
    reestimate: String(o.reestimate ?? 'true') !== 'false',
    grown: String(o.grown ?? 'false') === 'true',
  };
}

/** The BN-normalised activations (z − running_mean)/√(running_var + ε) of one layer: [N, C, ...spatial]. */
export async function normalisedActivations(model: OnnxModel, bn: BnLayer, reference: OnnxModel, data: Dataset, runtime: Runtime): Promise<{ values: Float32Array; spatial: number[] }> {
  const session = await runtime.session(truncatedTo(model, [bn.input]));
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

/**
 * The values one transform sees: unit j's value in every image, or channel c's values at every
 * position (strided down). `a` holds `stored` images and stands for `n`: image i is a's image
 * i mod stored (the clean images repeated once per trigger, without running them again).
 */
function unitValues(a: Float32Array, n: number, C: number, hw: number, granularity: Granularity, j: number, maxValues: number, stored = n): Float64Array {
  const per = C * hw;
  if (granularity === 'unit') {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = a[(i % stored) * per + j];
    return out;
  }
  const total = n * hw, stride = Math.max(1, total / maxValues), count = Math.min(total, maxValues);
  return Float64Array.from({ length: count }, (_, k) => {
    const idx = Math.floor(k * stride), i = Math.floor(idx / hw);
    return a[(i % stored) * per + j * hw + (idx % hw)];
  });
}

export interface TargetReport {
  target: number;
  sources: number[];
  /** Kinds of the triggers the correction was fitted to, and how many. */
  triggerKinds: string[];
  triggers: number;
  /** Per BN layer: units the trigger changed, and their summed TV distance before and after correction. */
  layers: { layer: string; units: number; changed: number; tvBefore: number; tvAfter: number }[];
}

/**
 * Fits g_t for one target: layer by layer, each layer's stamped activations taken under the
 * corrections so far. Units whose stamped values equal the clean ones (outside the trigger's
 * receptive field) keep BN's normalisation unchanged. `stamped` is every trigger stamped on
 * every clean image, trigger by trigger (its image i is clean image i mod clean.n, stamped).
 */
export async function fitTarget(f: OnnxModel, clean: Dataset, stamped: Dataset, runtime: Runtime, o: BnaOptions, signal?: AbortSignal): Promise<{ layers: LayerCorrection[]; report: TargetReport['layers'] }> {
  const corrections: LayerCorrection[] = [];
  const report: TargetReport['layers'] = [];
  if (stamped.n % clean.n !== 0) throw new Error(`BNA: ${stamped.n} stamped images are not whole copies of ${clean.n} clean images`);
  for (const bn of bnLayers(f)) {
    signal?.throwIfAborted();
    const reference = await normalisedActivations(f, bn, f, clean, runtime);
    const shifted = await normalisedActivations(correctedNetwork(f, corrections), bn, f, stamped, runtime);
    const C = bn.channels, hw = reference.values.length / clean.n / C;
    const units = o.granularity === 'unit' ? C * hw : C;
    let tvBefore = 0, tvAfter = 0, changed = 0;
    const transforms = Array.from({ length: units }, (_, j) => {
      const ref = unitValues(reference.values, stamped.n, C, hw, o.granularity, j, o.maxValues, clean.n);
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

/** Two triggers with the same kind, target and values (the detector hands one per pair, and pairs joined by transfer share their donor's). */
function sameTrigger(a: ReversedTrigger, b: ReversedTrigger): boolean {
  if (a.kind !== b.kind || a.target !== b.target) return false;
  const ra = a as unknown as Record<string, unknown>, rb = b as unknown as Record<string, unknown>;
  return Object.keys(ra).every((k) => {
    const x = ra[k], y = rb[k];
    if (k === 'sources') return true;
    if (ArrayBuffer.isView(x) && ArrayBuffer.isView(y)) {
      const u = x as Float32Array, v = y as Float32Array;
      return u.length === v.length && u.every((e, i) => e === v[i]);
    }
    return JSON.stringify(x) === JSON.stringify(y);
  });
}

/** BNA's options as bnaOptions reads them, one line each. */
export const BNA_OPTIONS: OptionSpecs = {
  granularity: { type: 'string', default: 'unit', doc: "one transform per 'unit' (channel and position) or per 'channel'" },
  init: { type: 'string', default: defaultFitOptions.init, doc: "start of the fit: 'moments' (moment matching) or 'identity' (BN's normalisation)" },
  binWidth: { type: 'number', default: defaultFitOptions.binWidth, doc: 'histogram bin width of the total-variation objective' },
  tau: { type: 'number', default: defaultFitOptions.tau, doc: 'temperature τ of the soft histogram' },
  lr: { type: 'number', default: defaultFitOptions.lr, doc: 'Adam learning rate of the transform fit' },
  iterations: { type: 'integer', default: defaultFitOptions.iterations, doc: 'fit iterations per unit' },
  clip: { type: 'number', default: defaultFitOptions.clip, doc: 'bound ± on the fitted transform' },
  imagesPerClass: { type: 'integer', default: 100, doc: 'clean images per class the activations are compared on' },
  maxValues: { type: 'integer', default: 50_000, doc: 'activation values per unit at most' },
  minChange: { type: 'number', default: 0.05, doc: 'a unit whose stamped activations move less than this is left as it is' },
  minScale: { type: 'number', default: 1, doc: 'floor of the moment-matched scale (1 never sharpens a unit)' },
  reestimate: { type: 'boolean', default: true, doc: "re-estimate each trigger on all of its target's source classes (the paper's step)" },
  grown: { type: 'boolean', default: false, doc: "also fit to each trigger grown to the detector's flag bound" },
};

export const bnaFix: Fix = {
  id: 'bna',
  title: 'BNA: activation-distribution correction with triggered-input flagging',
  needs: 'labelled',
  cost: 60,
  needsTrigger: true,
  options: BNA_OPTIONS,
  notApplicable(model) {
    return bnLayers(model.onnx).length === 0 ? 'the model has no BatchNormalization layers (BN folded or absent); BNA corrects BN statistics' : undefined;
  },
  async run(ctx): Promise<FixRun> {
    const data = ctx.data!;
    const o = bnaOptions(ctx.options);
    const notes: string[] = [`triggers: ${ctx.triggerSource}`];
    const usable: ReversedTrigger[] = [];
    for (const t of ctx.triggers) {
      const s = stampable(t, data);
      if (!s.ok) notes.push(`${triggerLabel(t)} not used: ${s.reason}`);
      else {
        // One trigger shared by several pairs (transfer) speaks for all their source classes.
        const same = usable.findIndex((u) => sameTrigger(u, t));
        if (same < 0) usable.push(t);
        else usable[same] = { ...usable[same], sources: [...new Set([...usable[same].sources, ...t.sources])] };
      }
    }
    if (usable.length === 0) {
      return { method: 'bna', pruned: [], notes, nothing: ctx.triggers.length ? 'no reversed trigger can be stamped on input images, and BNA fits its correction to stamped images' : `no backdoor trigger was found (${ctx.triggerSource}), and BNA corrects a detected trigger` };
    }
    const K = ctx.numClasses ?? Math.max(...(data.labels ?? [0])) + 1;
    const byClass = imagesByClass(data, K, o.imagesPerClass, ctx.seed);
    const corrections: TargetCorrection[] = [];
    const reports: TargetReport[] = [];
    const grouped = [...byTarget(usable)];
    let gradient: BatchGradient | undefined;
    for (const [step, [target, triggers]] of grouped.entries()) {
      // Ŝ(t): every source class a trigger of t names; a trigger naming none speaks for all other classes.
      const named = new Set(triggers.flatMap((t) => (t.sources.length ? t.sources : Array.from({ length: K }, (_, c) => c))));
      named.delete(target);
      const sourceList = [...named].sort((a, b) => a - b);
      const images = sourceList.flatMap((s) => byClass[s] ?? []);
      if (images.length === 0) throw new BackdoorLensError('bad-data', `no clean images of the source classes ${sourceList.join(', ')} of target ${target} in ${data.source}`, { file: data.source });
      const fitting = [...triggers];
      const kinds = [...new Set(triggers.map((t) => t.kind))];
      if (o.reestimate) {
        for (const kind of kinds.filter((k) => REESTIMABLE.includes(k))) {
          ctx.progress(step / grouped.length, `target ${target}: re-estimating the ${kind} trigger on classes ${sourceList.join(', ')}`);
          gradient ??= await inputGradient(ctx.runtime, ctx.model.onnx);
          const r = await reestimate(kind, target, sourceList, images, data, gradient, { seed: ctx.seed, id: 20_000 + target, signal: ctx.signal });
          if (r.trigger) {
            // The paper's step: the correction is fitted to the trigger re-estimated on all source classes,
            // which replaces the detector's triggers of its kind (fitted to both, each is matched worse).
            const bound = fitting.find((t) => t.kind === kind)?.flaggedBelowSize;
            for (let i = fitting.length - 1; i >= 0; i--) if (fitting[i].kind === kind) fitting.splice(i, 1);
            fitting.push(bound === undefined ? r.trigger : { ...r.trigger, flaggedBelowSize: bound });
            notes.push(`target ${target}: ${kind} trigger re-estimated on classes ${sourceList.join(', ')} (size ${r.size.toFixed(2)})`);
          } else notes.push(`target ${target}: could not re-estimate a ${kind} trigger on classes ${sourceList.join(', ')} in ${r.steps} steps; fitted on the detector's triggers`);
        }
      }
      if (o.grown) fitting.push(...fitting.flatMap((t) => atFlagBound(t) ?? []));
      // Every trigger stamped on every source image: the correction has to hold for each.
      const clean = subset(data, images);
      const stamped = concatSamples(fitting.map((t) => stampTrigger(t, clean)));
      ctx.progress((step + 0.5) / grouped.length, `target ${target}: fitting the activation correction to ${fitting.length} trigger(s)`);
      const fit = await fitTarget(ctx.model.onnx, clean, stamped, ctx.runtime, o, ctx.signal);
      corrections.push({ target, layers: fit.layers });
      reports.push({ target, sources: sourceList, triggerKinds: [...new Set(fitting.map((t) => t.kind))], triggers: fitting.length, layers: fit.report });
      notes.push(`target ${target}: corrected for ${fitting.length} trigger(s) (${[...new Set(fitting.map((t) => t.kind))].join(', ')}) on ${images.length} images of classes ${sourceList.join(', ')}; per layer, units changed by the triggers and their summed TV distance: ${fit.report.map((l) => `${l.layer} ${l.changed}/${l.units} ${l.tvBefore.toFixed(1)}→${l.tvAfter.toFixed(1)}`).join(', ')}`);
    }
    notes.push(`one transform per ${o.granularity === 'unit' ? 'unit (channel and position)' : 'channel'}, started at ${o.fit.init === 'moments' ? 'moment matching' : "BN's normalisation"}; TV refined with Adam lr ${o.fit.lr}, ${o.fit.iterations} iterations, clip bound ±${o.fit.clip}, τ ${o.fit.tau}, bin width ${o.fit.binWidth}`);
    return { method: 'bna', model: bnaModel(ctx.model.onnx, corrections), pruned: [], notes, details: { targets: reports } };
  },
};
