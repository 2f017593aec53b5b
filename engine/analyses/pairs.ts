/**
 * Per-class-pair trigger reversal, the detector inside BNA: for every ordered pair (s, t) a trigger
 * that moves clean images of class s to t is reverse-engineered; MAD over all K(K−1) statistics
 * finds the pairs that are far too easy to flip. Detected pairs name the targets and the attack
 * shape (all-to-one, all-to-all, other).
 */
import { indicesOfClass, subset, type Dataset } from '../data/types';
import { usageError } from '../errors';
import { predict } from '../evaluate';
import type { Finding, PairResult } from '../report/types';
import { classifyAttack } from './attack-type';
import { defaultSchedulerOptions, type SchedulerOptions } from './karm';
import { madOutliers } from './mad';
import { SeededRandom } from './random';
import { inputGradient } from './reversal-gradient';
import type { ObjectiveKind } from './reversal-objectives';
import { geometryOf, makeTask, runTasks } from './reversal-run';
import { patchSchedule, perturbationSchedule, type ReversalTask, type ScheduleOptions } from './reversal-task';
import { triggerArtifacts } from './trigger-artifacts';
import { stampTrigger, type ReversedTrigger } from './trigger';
import type { Analysis, AnalysisContext, AnalysisOutput, ArtifactImage } from './types';

export interface PairsOptions {
  objectives: ObjectiveKind[];
  schedule: 'bandit' | 'plain';
  /** Anomaly index above which a pair is an outlier (BNA's paper: 7). */
  threshold: number;
  /** Clean images of each source class used (at most). */
  imagesPerClass: number;
  /** Images per optimisation step. */
  batchSize: number;
  maxSteps: number;
  /** Samples per gradient call. */
  maxBatch: number;
  /**
   * How much a detected pair's trigger must raise the share of a class's clean images sent to its
   * target for that class to join the target's sources (see `transferredSources`).
   */
  transfer: number;
  scheduler: SchedulerOptions;
}

const num = (v: unknown, fallback: number, name: string): number => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw usageError(`option pairs.${name} must be a positive number, got '${String(v)}'`);
  return n;
};

export function pairsOptions(o: Record<string, unknown>): PairsOptions {
  const objective = String(o.objective ?? 'patch');
  const objectives: ObjectiveKind[] | undefined = objective === 'both' ? ['patch', 'perturbation'] : objective === 'patch' || objective === 'perturbation' ? [objective] : undefined;
  if (!objectives) throw usageError(`option pairs.objective must be patch, perturbation or both, got '${objective}'`);
  const schedule = String(o.schedule ?? 'bandit');
  if (schedule !== 'bandit' && schedule !== 'plain') throw usageError(`option pairs.schedule must be bandit or plain, got '${schedule}'`);
  const threshold = num(o.threshold, 7, 'threshold');
  return {
    objectives,
    schedule,
    threshold,
    imagesPerClass: Math.floor(num(o.imagesPerClass, 100, 'imagesPerClass')),
    batchSize: Math.floor(num(o.batchSize, patchSchedule.batchSize, 'batchSize')),
    maxSteps: Math.floor(num(o.maxSteps, patchSchedule.maxSteps, 'maxSteps')),
    maxBatch: Math.floor(num(o.maxBatch, 512, 'maxBatch')),
    transfer: num(o.transfer, 0.2, 'transfer'),
    scheduler: {
      ...defaultSchedulerOptions,
      mode: schedule,
      threshold,
      decideAt: Math.floor(num(o.decideAt, defaultSchedulerOptions.decideAt, 'decideAt')),
      warmup: Math.floor(num(o.warmup, defaultSchedulerOptions.warmup, 'warmup')),
    },
  };
}

/** The number of classes: from the model when it says, else from one forward pass. */
export async function classCount(ctx: AnalysisContext, data: Dataset): Promise<number> {
  if (ctx.numClasses) return ctx.numClasses;
  const one = { ...data, n: 1, x: data.x.subarray(0, data.x.length / data.n), dims: [1, ...data.dims.slice(1)] };
  return (await predict(ctx.model.onnx, one, ctx.runtime)).numClasses;
}

/** Up to `cap` images of each class, in a seeded order. */
export function imagesByClass(data: Dataset, k: number, cap: number, seed: number): number[][] {
  return Array.from({ length: k }, (_, c) => new SeededRandom(SeededRandom.derive(seed, 7919, c)).shuffle(indicesOfClass(data, c)).slice(0, cap));
}

interface PairRun {
  kind: ObjectiveKind;
  source: number;
  target: number;
  task: ReversalTask;
  /** 1/size, projected to the end of the schedule when the bandit stopped the pair early. */
  statistic: number;
  anomalyIndex: number;
  /** 'outlier': MAD flagged it; 'transfer': a detected pair's trigger also moves this class. */
  via?: 'outlier' | 'transfer';
  /** For 'transfer': the outlier pair whose trigger was stamped, and the share of images it moved. */
  from?: PairRun;
  rate?: number;
}

const sizeText = (kind: ObjectiveKind, size: number) => (kind === 'patch' ? `|m|₁ = ${size.toFixed(1)}` : `‖v‖₂ = ${size.toFixed(3)}`);

function triggerOf(p: PairRun): ReversedTrigger {
  const donor = p.from ?? p;
  return donor.task.objective.toTrigger(p.target, [p.source], donor.task.bestParams);
}

/**
 * For each target of an outlier pair, stamps the strongest outlier's trigger into the clean images
 * of every other class; a class joins the target's sources when the trigger raises the share of its
 * images sent to the target by at least `lift` (over the share the model sends there unstamped).
 * An all-to-one backdoor answers to one trigger whatever the class, so a clearly outlying pair
 * names the others without relying on weaker pair statistics; under an all-to-all backdoor the
 * same trigger sends other classes elsewhere, so nothing joins. The donor pair runs to its own
 * stop rule in either schedule, so the result does not depend on the schedule.
 */
async function transferredSources(ctx: AnalysisContext, data: Dataset, images: number[][], runs: PairRun[], lift: number): Promise<string[]> {
  const notes: string[] = [];
  const strongest = new Map<number, PairRun>();
  for (const r of runs) if (r.via === 'outlier' && (!strongest.get(r.target) || r.statistic > strongest.get(r.target)!.statistic)) strongest.set(r.target, r);
  const share = async (d: Dataset, target: number) => (await predict(ctx.model.onnx, d, ctx.runtime, { signal: ctx.signal })).labels.reduce((n, c) => n + (c === target ? 1 : 0), 0) / d.n;
  for (const [target, donor] of strongest) {
    const trigger = donor.task.objective.toTrigger(target, [donor.source], donor.task.bestParams);
    const rates: string[] = [];
    for (const r of runs) {
      if (r.target !== target || r.kind !== donor.kind || r === donor || images[r.source].length === 0) continue;
      const stamped = await share(stampTrigger(trigger, data, images[r.source]), target);
      const base = await share(subset(data, images[r.source]), target);
      r.rate = stamped;
      rates.push(`${r.source}: ${(100 * base).toFixed(0)}→${(100 * stamped).toFixed(0)}%`);
      if (!r.via && stamped - base >= lift) Object.assign(r, { via: 'transfer', from: donor });
    }
    notes.push(`the ${donor.source} → ${target} trigger sends to class ${target} (unstamped → stamped): ${rates.join(', ')}`);
  }
  return notes;
}

export const pairsAnalysis: Analysis = {
  id: 'pairs',
  title: 'Class-pair trigger reversal',
  needs: 'labelled',
  detector: true,
  runsByDefault: true,
  async run(ctx): Promise<AnalysisOutput> {
    const data = ctx.data!;
    const o = pairsOptions(ctx.options);
    const K = await classCount(ctx, data);
    const images = imagesByClass(data, K, o.imagesPerClass, ctx.seed);
    const missing = images.flatMap((list, c) => (list.length === 0 ? [c] : []));
    const geometry = geometryOf(data);
    const gradient = await inputGradient(ctx.runtime, ctx.model.onnx);
    const notes: string[] = [];
    if (missing.length) notes.push(`no clean images of class${missing.length > 1 ? 'es' : ''} ${missing.join(', ')}: pairs with ${missing.length > 1 ? 'these sources' : 'this source'} were not reversed`);
    const runs: PairRun[] = [];
    let sampleGradients = 0;
    for (const [oi, kind] of o.objectives.entries()) {
      const schedule: ScheduleOptions = { ...(kind === 'patch' ? patchSchedule : perturbationSchedule), batchSize: o.batchSize, maxSteps: o.maxSteps };
      const mine: PairRun[] = [];
      for (let s = 0; s < K; s++) {
        if (images[s].length === 0) continue;
        for (let t = 0; t < K; t++) {
          if (s === t) continue;
          const id = oi * K * K + s * K + t;
          mine.push({ kind, source: s, target: t, task: makeTask(id, kind, t, images[s], geometry, schedule, ctx.seed), statistic: 0, anomalyIndex: 0 });
        }
      }
      const stats = await runTasks(mine.map((r) => r.task), o.scheduler, data, gradient, {
        maxBatch: o.maxBatch,
        signal: ctx.signal,
        onRound: (done, total) => ctx.progress((oi + done / total) / o.objectives.length, `${kind}: ${done}/${total} pairs finished`),
      });
      sampleGradients += stats.sampleGradients;
      mine.forEach((r, i) => (r.statistic = stats.statistics[i]));
      const steps = mine.reduce((s, r) => s + r.task.step, 0);
      notes.push(`${kind}: ${mine.length} pairs, ${o.schedule} schedule, ${steps} steps of ${schedule.batchSize} images (${stats.sampleGradients} image gradients in ${stats.calls} batched calls)${o.schedule === 'bandit' ? `; after ${o.scheduler.warmup} lockstep warm-up steps ${stats.dropped} pairs stopped early as unable to become outliers, the outlier test ran at step ${o.scheduler.decideAt} on all pairs at that common step, and ${stats.outliers} outlier pair(s) ran on to their own stop` : ''}`);
      runs.push(...mine);
    }

    for (const kind of o.objectives) {
      const mine = runs.filter((r) => r.kind === kind);
      const r = madOutliers(mine.map((p) => p.statistic), o.threshold, 'above');
      mine.forEach((p, i) => {
        p.anomalyIndex = r.anomalyIndex[i];
        if (r.flagged[i] && p.task.succeeded) p.via = 'outlier';
      });
    }
    notes.push(...(await transferredSources(ctx, data, images, runs, o.transfer)));
    const flaggedRuns = runs.filter((p) => p.via);
    const pairs: PairResult[] = runs.map((p) => ({ source: p.source, target: p.target, statistic: p.statistic, anomalyIndex: p.anomalyIndex, flagged: !!p.via, method: `pairs:${p.kind}` }));
    const detected = dedupe(flaggedRuns.map((p) => ({ source: p.source, target: p.target })));
    const targets = [...new Set(detected.map((p) => p.target))].sort((a, b) => a - b);
    const attackType = classifyAttack(detected);
    const findings: Finding[] = flaggedRuns.map((p) => ({
      severity: 'error',
      code: 'BL001',
      method: 'pairs',
      message:
        p.via === 'outlier'
          ? `Class pair ${p.source} → ${p.target} is an outlier under trigger reversal: a ${p.kind} of ${sizeText(p.kind, p.task.size)} moves ≥${Math.round(100 * p.task.options.successThreshold)}% of class-${p.source} images to class ${p.target} (statistic ${p.statistic.toFixed(4)}, anomaly index ${p.anomalyIndex.toFixed(1)} > ${o.threshold}). Target class ${p.target}.`
          : `Class pair ${p.source} → ${p.target} carries the same backdoor: the trigger reversed for ${p.from!.source} → ${p.target} sends ${(100 * p.rate!).toFixed(0)}% of class-${p.source} images to class ${p.target} (the pair's own statistic ${p.statistic.toFixed(4)}, anomaly index ${p.anomalyIndex.toFixed(1)}). Target class ${p.target}.`,
      location: { pair: { source: p.source, target: p.target } },
    }));
    const triggers: ReversedTrigger[] = flaggedRuns.map(triggerOf);
    const artifacts: ArtifactImage[] = flaggedRuns.flatMap((p, i) =>
      triggerArtifacts(triggers[i], data, images[p.source][0], { stem: `pair-${p.source}-${p.target}${o.objectives.length > 1 ? `-${p.kind}` : ''}`, pair: { source: p.source, target: p.target } }),
    );
    if (targets.length) notes.push(`detected ${detected.length} pair${detected.length === 1 ? '' : 's'} with target${targets.length === 1 ? '' : 's'} ${targets.join(', ')} (${attackType}): ${flaggedRuns.filter((p) => p.via === 'outlier').length} MAD outlier(s), the rest by trigger transfer (the trigger sends ≥${Math.round(100 * o.transfer)} points more of a class to the target)`);
    return { findings, pairs, targets, attackType, backdoored: detected.length > 0, artifacts, gradientEvaluations: sampleGradients, notes, state: { triggers } };
  },
};

function dedupe(pairs: { source: number; target: number }[]) {
  const seen = new Set<string>();
  return pairs.filter((p) => !seen.has(`${p.source},${p.target}`) && seen.add(`${p.source},${p.target}`));
}
