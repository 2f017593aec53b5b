/**
 * ANP — adversarial neuron pruning (Wu & Wang, NeurIPS 2021), needs clean labelled images.
 * Every neuron (BN channel; conv channel on a BN-folded export) gets a mask m ∈ [0, 1] and
 * perturbations δ, ξ ∈ [−ε, ε]: weight γ·(m + δ), bias β·(1 + ξ). Each batch draws δ, ξ
 * uniformly, takes `steps` signed-gradient ascent steps of ε/steps on the clean loss, then one
 * SGD step (momentum) on m for α·CE(masked) + (1 − α)·CE(masked and perturbed); m is clamped to
 * [0, 1]. Neurons with small masks are the backdoor's.
 *
 * The masked BN is a gate after the layer (neurons/gates.ts): out = BN(x)·s + t with
 * s = m + δ and t = (1 + ξ − m − δ)·β equals γ(m + δ)·x̂ + β(1 + ξ), so gradients w.r.t. s and t
 * (the autodiff gradient graph) give ∂L/∂m = ∂L/∂δ = ∂L/∂s − β·∂L/∂t and ∂L/∂ξ = β·∂L/∂t.
 *
 * The threshold is chosen from clean data only: the largest of 0, 0.05, …, 0.9 (the authors'
 * sweep) whose pruning keeps clean accuracy within a budget. Never from triggered data.
 */
import { GradientSession } from '../../autodiff';
import { usageError } from '../../errors';
import { subset, type Dataset } from '../../data/types';
import { bnStatus } from '../../graph/patterns';
import type { OnnxModel } from '../../graph/model';
import type { Tensor } from '../../tensor';
import { gateLayers, gatedPredictions, pruningGates, type GatedModel } from '../neurons/gates';
import { checkDataFits, checkLabelRange, noNeuronLayers, preActivationLayers, ownParameters, requireLayers, type NeuronLayer } from '../neurons/layers';
import type { OptionSpecs } from '../../method-options';
import { firstSamples, numberOption } from '../neurons/options';
import { neuronOutput, type LayerScores } from '../neurons/report';
import type { NeuronRef } from '../neurons/prune';
import { largestHolding } from '../neurons/search';
import { mulberry32 } from '../stats/random';
import type { Analysis, AnalysisContext, AnalysisOutput } from '../types';

export const ANP_DEFAULTS = { eps: 0.4, steps: 1, alpha: 0.2, batchSize: 128, iterations: 2000, lr: 0.2, momentum: 0.9, budget: 1, samples: 0, checkEvery: 50, patience: 3, minIterations: 150 };

/**
 * 'reference': the authors' schedule, every one of `iterations` steps with its own ascent
 * gradient (3 gradient evaluations per iteration). 'interactive': the ascent direction taken from
 * the same iteration's natural-loss gradient (2 evaluations), and a stopping rule: every
 * `checkEvery` iterations the pruning that the clean-data threshold gives is computed, and the
 * run stops once it has not changed for `patience` checks in a row (after `minIterations`).
 */
export type AnpSchedule = 'interactive' | 'reference';
export const ANP_THRESHOLDS = Array.from({ length: 19 }, (_, i) => Math.round(i * 5) / 100);

export interface AnpSettings {
  eps: number;
  steps: number;
  alpha: number;
  batchSize: number;
  iterations: number;
  lr: number;
  momentum: number;
  /** Clean-accuracy loss allowed when choosing the threshold (fraction). */
  budget: number;
  /** Clean images used (0 = all given). */
  samples: number;
  schedule: AnpSchedule;
  checkEvery: number;
  patience: number;
  minIterations: number;
}

export function anpSettings(options: Record<string, unknown>): AnpSettings {
  const o = (key: keyof typeof ANP_DEFAULTS, range: Parameters<typeof numberOption>[4]) => numberOption(options, 'anp', key, ANP_DEFAULTS[key], range);
  const schedule = String(options.schedule ?? 'interactive');
  if (schedule !== 'interactive' && schedule !== 'reference') throw usageError(`option anp.schedule must be interactive or reference, got '${schedule}'`);
  return {
    schedule,
    checkEvery: o('checkEvery', { min: 1, integer: true }),
    patience: o('patience', { min: 1, integer: true }),
    minIterations: o('minIterations', { min: 0, integer: true }),
    eps: o('eps', { min: 0, max: 1 }),
    steps: o('steps', { min: 0, integer: true }),
    alpha: o('alpha', { min: 0, max: 1 }),
    batchSize: o('batchSize', { min: 1, integer: true }),
    iterations: o('iterations', { min: 1, integer: true }),
    lr: o('lr', { min: 0 }),
    momentum: o('momentum', { min: 0, max: 1 }),
    budget: o('budget', { min: 0, max: 100 }) / 100,
    samples: o('samples', { min: 0, integer: true }),
  };
}

/** β of each layer: the BN bias, or the conv bias (zeros without one) on a BN-folded export. */
function biasOf(model: OnnxModel, layer: NeuronLayer): Float32Array {
  const name = layer.bn ? layer.bn.bias : layer.conv?.bias;
  const t = name ? model.initializer(name) : undefined;
  return t ? Float32Array.from(t.data as Float32Array) : new Float32Array(layer.channels);
}

/** Per layer: one value per channel. */
export type ChannelValues = Map<string, Float32Array>;

export interface AnpGradients {
  loss: number;
  /** ∂L/∂m (also ∂L/∂δ, which enters the same way). */
  mask: ChannelValues;
  /** ∂L/∂ξ. */
  xi: ChannelValues;
}

/**
 * The masked, perturbed network as gates on the original one, with a gradient graph for the
 * gate inputs: loss and gradients w.r.t. m, δ and ξ for any batch.
 */
export class AnpProblem {
  private constructor(
    readonly gated: GatedModel,
    readonly betas: ChannelValues,
    private readonly session: GradientSession,
  ) {}

  static async create(runtime: AnalysisContext['runtime'], original: OnnxModel, layers: NeuronLayer[]): Promise<AnpProblem> {
    const model = ownParameters(original);
    const gated = gateLayers(model, layers);
    const session = await GradientSession.create(runtime, gated.model, { loss: { kind: 'cross-entropy' }, wrt: gated.gates.flatMap((g) => [g.scale, g.shift]) });
    return new AnpProblem(gated, new Map(gated.gates.map((g) => [g.layer.name, biasOf(model, g.layer)])), session);
  }

  get evaluations(): number {
    return this.session.evaluations;
  }

  async gradients(batch: Dataset, mask: ChannelValues, perturbation?: { delta: ChannelValues; xi: ChannelValues }): Promise<AnpGradients> {
    const inputs: Record<string, Tensor> = { [this.gated.input]: { dtype: 'float32', dims: batch.dims, data: batch.x } };
    for (const g of this.gated.gates) {
      const name = g.layer.name, C = g.layer.channels;
      const m = mask.get(name)!, beta = this.betas.get(name)!, d = perturbation?.delta.get(name), x = perturbation?.xi.get(name);
      const scale = new Float32Array(C), shift = new Float32Array(C);
      for (let c = 0; c < C; c++) {
        scale[c] = m[c] + (d ? d[c] : 0);
        shift[c] = (1 + (x ? x[c] : 0) - scale[c]) * beta[c];
      }
      inputs[g.scale] = { dtype: 'float32', dims: [C], data: scale };
      inputs[g.shift] = { dtype: 'float32', dims: [C], data: shift };
    }
    const r = await this.session.run({ inputs, labels: batch.labels! });
    const dMask: ChannelValues = new Map(), dXi: ChannelValues = new Map();
    for (const g of this.gated.gates) {
      const gs = r.grads[g.scale], gt = r.grads[g.shift], beta = this.betas.get(g.layer.name)!;
      dMask.set(g.layer.name, Float32Array.from(gs, (v, c) => v - beta[c] * gt[c]));
      dXi.set(g.layer.name, Float32Array.from(gt, (v, c) => beta[c] * v));
    }
    return { loss: r.loss, mask: dMask, xi: dXi };
  }
}

export interface AnpMasks {
  masks: ChannelValues;
  gated: GatedModel;
  gradientEvaluations: number;
  /** Iterations run, and why the run stopped where it did. */
  iterations: number;
  stop: string;
}

/** Batches as a shuffling data loader draws them: a new permutation every pass over the data (the last batch of a pass may be smaller). */
function batches(data: Dataset, size: number, random: () => number): () => Dataset {
  let order: number[] = [], at = 0;
  return () => {
    if (at >= order.length) {
      order = Array.from({ length: data.n }, (_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      at = 0;
    }
    const idx = order.slice(at, at + size);
    at += idx.length;
    return subset(data, idx);
  };
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** The channels whose mask is at most the threshold. */
export function prunedAt(masks: ChannelValues, threshold: number): NeuronRef[] {
  return [...masks].flatMap(([layer, m]) => Array.from(m.keys()).filter((c) => m[c] <= threshold).map((channel) => ({ layer, channel })));
}

/** One check of the interactive schedule: the clean-data threshold then, and the channels it prunes. */
export interface PruningCheck {
  iteration: number;
  threshold: number;
  pruned: NeuronRef[];
}

const sameChannels = (a: PruningCheck['pruned'], b: PruningCheck['pruned']) => a.length === b.length && a.every((p, i) => p.layer === b[i].layer && p.channel === b[i].channel);

/**
 * The interactive stopping rule over the checks so far (in order): the iteration of the first
 * check at which the pruning (threshold and channels) had stayed the same for `patience` checks
 * in a row, at or after `minIterations`; undefined while it has not settled.
 */
export function settledPruning(checks: readonly PruningCheck[], s: Pick<AnpSettings, 'patience' | 'minIterations'>): number | undefined {
  let same = 0;
  for (let i = 1; i < checks.length; i++) {
    const a = checks[i - 1], b = checks[i];
    same = a.threshold === b.threshold && sameChannels(a.pruned, b.pruned) ? same + 1 : 0;
    if (same >= s.patience && b.iteration >= s.minIterations) return b.iteration;
  }
  return undefined;
}

/** Optimises the neuron masks; returns them per layer. `budget`/`batchSize` (for the stopping rule's threshold choice) come from the settings and the context. */
export async function optimiseMasks(
  model: OnnxModel,
  layers: NeuronLayer[],
  data: Dataset,
  s: AnpSettings,
  ctx: Pick<AnalysisContext, 'runtime' | 'seed' | 'signal' | 'progress'> & { batchSize?: number; /** Called after each iteration with the masks (the bench's trajectories). */ observe?: (iteration: number, masks: ChannelValues, gated: GatedModel) => Promise<void> | void },
): Promise<AnpMasks> {
  const problem = await AnpProblem.create(ctx.runtime, model, layers);
  const perLayer = (fill: number): ChannelValues => new Map(layers.map((l) => [l.name, new Float32Array(l.channels).fill(fill)]));
  const mask = perLayer(1), velocity = perLayer(0), delta = perLayer(0), xi = perLayer(0);
  // Seeded, so a scan with the same seed gives the same masks.
  const random = mulberry32(ctx.seed ^ 0x414e50);
  const nextBatch = batches(data, s.batchSize, random);
  const interactive = s.schedule === 'interactive';
  let stop = `the ${s.iterations} iterations of the ${s.schedule} schedule`;
  const checks: PruningCheck[] = [];
  let it = 0;
  for (; it < s.iterations; it++) {
    ctx.signal.throwIfAborted();
    const batch = nextBatch();
    // The interactive schedule takes the ascent direction from this iteration's natural gradient (one evaluation fewer).
    const natural = interactive || s.eps === 0 ? await problem.gradients(batch, mask) : undefined;
    if (s.eps > 0) {
      for (const l of layers) {
        const d = delta.get(l.name)!, x = xi.get(l.name)!;
        for (let c = 0; c < l.channels; c++) (d[c] = (2 * random() - 1) * s.eps), (x[c] = (2 * random() - 1) * s.eps);
      }
      // Signed-gradient ascent on the clean loss, kept inside [−ε, ε].
      for (let step = 0; step < s.steps; step++) {
        const g = interactive && step === 0 ? natural! : await problem.gradients(batch, mask, { delta, xi });
        for (const l of layers) {
          const d = delta.get(l.name)!, x = xi.get(l.name)!, gd = g.mask.get(l.name)!, gx = g.xi.get(l.name)!;
          for (let c = 0; c < l.channels; c++) {
            d[c] = clamp(d[c] + (s.eps / s.steps) * Math.sign(gd[c]), -s.eps, s.eps);
            x[c] = clamp(x[c] + (s.eps / s.steps) * Math.sign(gx[c]), -s.eps, s.eps);
          }
        }
      }
    }
    const plain = natural ?? (await problem.gradients(batch, mask));
    const robust = s.eps > 0 ? await problem.gradients(batch, mask, { delta, xi }) : undefined;
    for (const l of layers) {
      const m = mask.get(l.name)!, v = velocity.get(l.name)!, gn = plain.mask.get(l.name)!, gr = robust?.mask.get(l.name);
      for (let c = 0; c < l.channels; c++) {
        const g = gr ? s.alpha * gn[c] + (1 - s.alpha) * gr[c] : gn[c];
        // PyTorch SGD with momentum: v ← μ·v + g (v = g on the first step), m ← m − lr·v.
        v[c] = it === 0 ? g : s.momentum * v[c] + g;
        m[c] = clamp(m[c] - s.lr * v[c], 0, 1);
      }
    }
    await ctx.observe?.(it + 1, mask, problem.gated);
    if (it % 10 === 9 || it === s.iterations - 1) ctx.progress((0.9 * (it + 1)) / s.iterations, `neuron perturbation, iteration ${it + 1}/${s.iterations}`);
    if (interactive && (it + 1) % s.checkEvery === 0) {
      // What would be pruned now: the threshold the clean data allows, and the channels under it.
      const choice = await chooseThreshold(ctx.runtime, problem.gated, mask, data, s.budget, { batchSize: ctx.batchSize ?? 256, signal: ctx.signal });
      checks.push({ iteration: it + 1, threshold: choice.threshold, pruned: prunedAt(mask, choice.threshold) });
      if (settledPruning(checks, s) === it + 1) {
        it++;
        stop = `the pruning at the clean-data threshold (mask ≤ ${choice.threshold}) stayed the same for ${s.patience} checks ${s.checkEvery} iterations apart, after ${it} iterations`;
        break;
      }
    }
  }
  return { masks: mask, gated: problem.gated, gradientEvaluations: problem.evaluations, iterations: it, stop };
}

export interface ThresholdChoice {
  threshold: number;
  accuracyBefore: number;
  accuracyAt: number;
  /** The next threshold of the sweep and its accuracy, when it broke the budget. */
  next?: { threshold: number; accuracy: number };
  evaluations: number;
}

/** The largest sweep threshold whose pruning keeps accuracy on the clean labelled data within the budget. */
export async function chooseThreshold(runtime: AnalysisContext['runtime'], gated: GatedModel, masks: ChannelValues, data: Dataset, budget: number, options: { batchSize: number; signal?: AbortSignal }): Promise<ThresholdChoice> {
  const accuracy = async (pruned: NeuronRef[]) => {
    const pred = await gatedPredictions(runtime, gated, data, pruningGates(gated.gates, pruned), options);
    let ok = 0;
    for (let i = 0; i < data.n; i++) if (pred[i] === data.labels![i]) ok++;
    return ok / data.n;
  };
  const before = await accuracy([]);
  const accAt = new Map<number, number>();
  const thresholds = ANP_THRESHOLDS;
  // Index i+1 of the search stands for thresholds[i]; index 0 prunes nothing.
  const search = await largestHolding(thresholds.length, async (k) => {
    const acc = await accuracy(prunedAt(masks, thresholds[k - 1]));
    accAt.set(k, acc);
    return before - acc <= budget + 1e-12;
  });
  const k = search.count;
  const failed = search.probes.filter((p) => !p.holds).sort((a, b) => a.k - b.k)[0];
  return {
    threshold: k > 0 ? thresholds[k - 1] : -1,
    accuracyBefore: before,
    accuracyAt: k > 0 ? accAt.get(k)! : before,
    ...(failed ? { next: { threshold: thresholds[failed.k - 1], accuracy: accAt.get(failed.k)! } } : {}),
    evaluations: search.probes.length + 1,
  };
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** ANP's options (the paper's defaults, ANP_DEFAULTS), one line each. */
export const ANP_OPTIONS: OptionSpecs = {
  schedule: { type: 'string', default: 'interactive', doc: "'reference': the authors' schedule, 3 gradients per iteration; 'interactive' stops once the pruning settles" },
  eps: { type: 'number', default: ANP_DEFAULTS.eps, doc: 'perturbation bound ε of the neuron masks' },
  steps: { type: 'integer', default: ANP_DEFAULTS.steps, doc: 'ascent steps on the perturbation per iteration' },
  alpha: { type: 'number', default: ANP_DEFAULTS.alpha, doc: 'weight α of the natural loss against the perturbed loss' },
  batchSize: { type: 'integer', default: ANP_DEFAULTS.batchSize, doc: 'images per iteration' },
  iterations: { type: 'integer', default: ANP_DEFAULTS.iterations, doc: 'mask optimisation iterations at most' },
  lr: { type: 'number', default: ANP_DEFAULTS.lr, doc: 'mask learning rate' },
  momentum: { type: 'number', default: ANP_DEFAULTS.momentum, doc: 'SGD momentum of the masks' },
  budget: { type: 'number', default: ANP_DEFAULTS.budget, doc: 'clean accuracy (points) the chosen pruning threshold may cost' },
  samples: { type: 'integer', default: ANP_DEFAULTS.samples, doc: 'clean images used (0: all given)' },
  checkEvery: { type: 'integer', default: ANP_DEFAULTS.checkEvery, doc: 'interactive: iterations between pruning checks' },
  patience: { type: 'integer', default: ANP_DEFAULTS.patience, doc: 'interactive: unchanged checks in a row that stop the run' },
  minIterations: { type: 'integer', default: ANP_DEFAULTS.minIterations, doc: 'interactive: iterations before the run may stop' },
};

export const anp: Analysis = {
  id: 'anp',
  title: 'Adversarial neuron pruning (ANP)',
  needs: 'labelled',
  detector: false,
  // The reference defaults take 3 × 2000 gradient evaluations: minutes on a CPU even for a small
  // CNN. A scan runs ANP when asked for (--methods anp), not on every model it opens.
  runsByDefault: false,
  options: ANP_OPTIONS,
  notApplicable: (model) => noNeuronLayers(model, preActivationLayers(model.onnx), 'BatchNormalization or convolution layers'),
  async run(ctx: AnalysisContext): Promise<AnalysisOutput> {
    const model = ownParameters(ctx.model.onnx);
    const layers = requireLayers(ctx.model, preActivationLayers(model), 'BatchNormalization or convolution layers', 'ANP');
    checkDataFits(model, ctx.data!);
    checkLabelRange(ctx.data!, ctx.numClasses, model.source);
    const s = anpSettings(ctx.options);
    const data = firstSamples(ctx.data!, s.samples);
    const { masks, gated, gradientEvaluations, iterations, stop } = await optimiseMasks(model, layers, data, s, ctx);
    ctx.progress(0.9, 'choosing the pruning threshold on clean data');
    const choice = await chooseThreshold(ctx.runtime, gated, masks, data, s.budget, { batchSize: ctx.batchSize, signal: ctx.signal });
    const thresholdChoice = choice.threshold < 0
      ? `no threshold of the sweep 0, 0.05, …, 0.9 keeps clean accuracy within ${(100 * s.budget).toFixed(1)} points (mask ≤ 0 already gives ${pct(choice.next?.accuracy ?? choice.accuracyBefore)} from ${pct(choice.accuracyBefore)}): nothing pruned`
      : `mask ≤ ${choice.threshold}: the largest threshold of the sweep 0, 0.05, …, 0.9 that keeps accuracy on the clean data within ${(100 * s.budget).toFixed(1)} points (option anp.budget): ${pct(choice.accuracyBefore)} → ${pct(choice.accuracyAt)}${choice.next ? `; ${choice.next.threshold} would give ${pct(choice.next.accuracy)}` : ''}. Chosen from clean data only`;
    const scored: LayerScores[] = layers.map((l) => {
      const m = masks.get(l.name)!;
      return { layer: l.name, scores: Float64Array.from(m), threshold: choice.threshold, suspicion: Float64Array.from(m, (v) => 1 - v), flagged: Array.from(m, (v) => v <= choice.threshold) };
    });
    const notes = [
      thresholdChoice,
      `${iterations} iterations (stopped by ${stop}), batch ${s.batchSize}, ε ${s.eps}, ${s.steps} ascent step(s)${s.schedule === 'interactive' ? ' (the first from the natural-loss gradient)' : ''}, α ${s.alpha}, mask SGD lr ${s.lr} momentum ${s.momentum}, on ${data.n} clean images`,
      'BN uses its running statistics during the mask optimisation (the authors run it in train mode, with batch statistics) and no data augmentation is applied',
    ];
    if (!layers[0].bn && bnStatus(model).state === 'folded') notes.push('BN was folded: masks act on conv output channels and ξ perturbs the folded conv bias rather than β');
    const out = neuronOutput(
      { method: 'anp', code: 'BL013', label: 'ANP', scoreName: 'mask value', direction: 'below', comparison: 'at or below', rule: choice.threshold < 0 ? 'no clean-data threshold within budget' : `mask ≤ ${choice.threshold} (chosen on clean data)`, thresholdChoice, notes },
      scored,
    );
    return { ...out, gradientEvaluations };
  },
};
