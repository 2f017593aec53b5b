/**
 * Adaptive pruning: prune neurons in the order a method ranks them until the reverse-engineered
 * trigger stops working (its success on clean images below the goal: the fix's, 2% by default)
 * while the clean-accuracy loss stays within a budget (the fix's, 1.5 points by default). It
 * searches on the fix's fit images; the fix then measures the result on held-out ones. A fixed u leaves many backdoors
 * in place (the measured failure that motivated this mode); the trigger tells how far to go.
 *
 * Measures: accuracy on the labelled samples (agreement with the original model's predictions
 * when the set has no labels); trigger success = share of stamped source-class samples predicted
 * as the trigger's target, the worst over all triggers. On a possibly poisoned ('mixed') set the
 * samples labelled (or predicted) as a target class are left out of both, since poisoned samples
 * carry the target label.
 */
import { GatedEvaluator, gateLayers, gatedPredictions, openGates, pruningGates, type GatedModel } from '../analyses/neurons/gates';
import { prunableLayers } from '../analyses/neurons/prune';
import type { RankedNeuron } from '../analyses/neurons/report';
import { largestHolding } from '../analyses/neurons/search';
import { stampTrigger, type ReversedTrigger } from '../analyses/reversal/trigger';
import type { DataKind } from '../analyses/types';
import { subset, type Dataset } from '../data/types';
import { BackdoorLensError } from '../errors';
import type { OnnxModel } from '../graph/model';
import type { Runtime } from '../runtime/session';
import { concatSamples } from './measure';

export interface AdaptiveRequest {
  model: OnnxModel;
  runtime: Runtime;
  data: Dataset;
  dataKind: DataKind;
  /** Most suspicious first. */
  ranking: readonly RankedNeuron[];
  triggers: readonly ReversedTrigger[];
  /** Trigger success to get below (fraction). */
  goal: number;
  /** Largest clean-accuracy loss allowed (fraction). */
  budget: number;
  batchSize: number;
  signal?: AbortSignal;
  progress?(fraction: number, stage: string): void;
}

export interface AdaptiveOutcome {
  pruned: RankedNeuron[];
  accuracyBefore: number;
  accuracyAfter: number;
  /** accuracyBefore − accuracyAfter. */
  budgetUsed: number;
  successBefore: number;
  successAfter: number;
  /** Whether the trigger success went below the goal within the budget. */
  reachedGoal: boolean;
  /** Why the search stopped where it did, in words. */
  stop: string;
  evaluations: number;
  /** What accuracy and success were measured on, in words. */
  measuredOn: string;
}

interface Measure {
  accuracy: number;
  success: number;
}

/** Clean samples and stamped copies in one set, so one pass of the model scores a pruning. */
interface Probe {
  combined: Dataset;
  /** Reference class per clean sample (label, or the original prediction). */
  reference: Int32Array;
  cleanCount: number;
  stamped: { trigger: ReversedTrigger; start: number; count: number }[];
}

async function buildProbe(req: AdaptiveRequest, gated: GatedModel): Promise<Probe> {
  const { data } = req;
  const opts = { batchSize: req.batchSize, signal: req.signal };
  const reference = data.labels ?? (await gatedPredictions(req.runtime, gated, data, openGates(gated.gates), opts));
  const targets = new Set(req.triggers.map((t) => t.target));
  const all = Array.from({ length: data.n }, (_, i) => i);
  const cleanIdx = req.dataKind === 'mixed' ? all.filter((i) => !targets.has(reference[i])) : all;
  const parts: Dataset[] = [subset(data, cleanIdx)];
  const stamped: Probe['stamped'] = [];
  let at = cleanIdx.length;
  for (const trigger of req.triggers) {
    const sources = new Set(trigger.sources);
    const idx = all.filter((i) => reference[i] !== trigger.target && (sources.size === 0 || sources.has(reference[i])));
    if (idx.length === 0) continue;
    parts.push(stampTrigger(trigger, data, idx));
    stamped.push({ trigger, start: at, count: idx.length });
    at += idx.length;
  }
  if (cleanIdx.length === 0 || stamped.length === 0) {
    throw new BackdoorLensError('bad-data', `${data.source} has no samples of the trigger's source classes (or none outside its target class) to test the reversed trigger on`, { file: data.source });
  }
  return { combined: concatSamples(parts), reference: Int32Array.from(cleanIdx, (i) => reference[i]), cleanCount: cleanIdx.length, stamped };
}

export async function adaptivePrune(req: AdaptiveRequest): Promise<AdaptiveOutcome> {
  const layers = prunableLayers(req.model);
  const used = [...new Set(req.ranking.map((r) => r.layer))].map((name) => {
    const l = layers.get(name);
    if (!l) throw new BackdoorLensError('internal', `${req.model.source}: ranked neuron in unknown layer '${name}'`);
    return l;
  });
  const gated = gateLayers(req.model, used);
  const probe = await buildProbe(req, gated);
  const evaluator = await GatedEvaluator.create(req.runtime, gated, probe.combined, { batchSize: req.batchSize, signal: req.signal });
  const cache = new Map<number, Measure>();
  const measure = async (k: number): Promise<Measure> => {
    const hit = cache.get(k);
    if (hit) return hit;
    const pred = await evaluator.predictions(pruningGates(gated.gates, req.ranking.slice(0, k)));
    let ok = 0;
    for (let i = 0; i < probe.cleanCount; i++) if (pred[i] === probe.reference[i]) ok++;
    let success = 0;
    for (const s of probe.stamped) {
      let hits = 0;
      for (let i = s.start; i < s.start + s.count; i++) if (pred[i] === s.trigger.target) hits++;
      success = Math.max(success, hits / s.count);
    }
    const m = { accuracy: ok / probe.cleanCount, success };
    cache.set(k, m);
    req.progress?.(Math.min(0.95, cache.size / (2 * Math.log2(req.ranking.length + 2) + 2)), `${k} neurons pruned: trigger success ${(100 * success).toFixed(1)}%`);
    return m;
  };
  const before = await measure(0);
  const withinBudget = (m: Measure) => before.accuracy - m.accuracy <= req.budget + 1e-12;
  let count = 0;
  let stop: string;
  let reachedGoal: boolean;
  const pts = (x: number) => `${(100 * x).toFixed(2)} points`;
  const neurons = (k: number) => `${k} neuron${k === 1 ? '' : 's'}`;
  if (before.success < req.goal) {
    reachedGoal = true;
    stop = `the reversed trigger already fails on the unpruned model (${(100 * before.success).toFixed(1)}% < ${(100 * req.goal).toFixed(1)}%): nothing to prune`;
  } else {
    // Largest count at which the trigger still works within the budget; one more is the candidate.
    const search = await largestHolding(req.ranking.length, async (k) => {
      const m = await measure(k);
      return m.success >= req.goal && withinBudget(m);
    });
    const next = search.count + 1;
    if (next > req.ranking.length) {
      count = search.count;
      reachedGoal = false;
      stop = `pruning all ${req.ranking.length} ranked neurons leaves the trigger working`;
    } else {
      const m = await measure(next);
      if (m.success < req.goal && withinBudget(m)) {
        count = next;
        reachedGoal = true;
        stop = `the reversed trigger stops working after ${neurons(next)}`;
      } else {
        count = search.count;
        reachedGoal = false;
        stop = withinBudget(m)
          ? `the search stopped at ${neurons(search.count)} with the trigger still working`
          : `pruning ${neurons(next)} would cost ${pts(before.accuracy - m.accuracy)} of clean accuracy, over the budget of ${pts(req.budget)}, with the trigger still at ${(100 * m.success).toFixed(1)}%`;
      }
    }
  }
  const after = await measure(count);
  const stampedCount = probe.stamped.reduce((a, s) => a + s.count, 0);
  return {
    pruned: req.ranking.slice(0, count),
    accuracyBefore: before.accuracy,
    accuracyAfter: after.accuracy,
    budgetUsed: before.accuracy - after.accuracy,
    successBefore: before.success,
    successAfter: after.success,
    reachedGoal,
    stop,
    evaluations: cache.size,
    measuredOn: `${req.data.labels ? 'accuracy' : 'agreement with the original predictions'} on ${probe.cleanCount} samples of ${req.data.source}${req.dataKind === 'mixed' ? ' (target-class samples left out: the set may be poisoned)' : ''}; trigger success on ${stampedCount} stamped source-class samples`,
  };
}
