/**
 * The class-pair scan (BNA's detector; `--option pairs.classPairs=true`): for every ordered pair
 * (s, t) a trigger that moves clean images of class s to t is reverse-engineered; MAD over all
 * K(K−1) statistics finds the pairs that are far too easy to flip. Detected pairs name the targets
 * and the attack shape (all-to-one, all-to-all, other). It finds source-specific backdoors and
 * class mappings the default screens do not cover, but single pairs are noisy: natural neighbours
 * (sneaker → sandal) reverse to triggers as small as a backdoor's (docs/detection.md), so its
 * threshold is BNA's, not calibrated, and it is off by default.
 */
import type { OptionSpecs } from '../../method-options';
import { subset, type Dataset } from '../../data/types';
import { usageError } from '../../errors';
import { predict } from '../../evaluate';
import type { Finding, PairResult, VerdictEvidence } from '../../report/types';
import { classifyAttack } from './attack-type';
import { defaultSchedulerOptions, type SchedulerOptions } from './karm';
import { madOutliers } from '../stats/mad';
import { positiveOption } from '../positive-option';
import { imagesByClass } from './class-images';
import type { ObjectiveKind, SampleGeometry } from './objectives';
import type { BatchGradient } from './batch';
import { makeTask, runTasks } from './run';
import { patchSchedule, perturbationSchedule, type ReversalTask, type ScheduleOptions } from './task';
import { triggerArtifacts } from './trigger-artifacts';
import { stampTrigger, type ReversedTrigger } from './trigger';
import type { AnalysisContext, AnalysisOutput, ArtifactImage } from '../types';

export interface PairScanOptions {
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
   * How much the outliers' trigger must raise the share of a class's clean images sent to one class
   * (which must also receive most of them) for that pair to join the detected pairs (see `transferredPairs`).
   */
  transfer: number;
  scheduler: SchedulerOptions;
}

/** The class-pair scan's options (`pairs.classPairs=true`), part of trigger reversal's. */
export const PAIR_SCAN_OPTIONS = {
  pairObjective: { type: 'string', default: 'patch', doc: 'trigger kind of the class-pair scan: patch, perturbation or both' },
  pairSchedule: { type: 'string', default: 'bandit', doc: "'bandit' stops hopeless pairs early; 'plain' runs every pair to its cap" },
  pairThreshold: { type: 'number', default: defaultSchedulerOptions.threshold, doc: 'anomaly index above which a class pair is an outlier' },
  pairMaxSteps: { type: 'integer', default: patchSchedule.maxSteps, doc: 'optimisation steps per pair at most' },
  pairDecideAt: { type: 'integer', default: defaultSchedulerOptions.decideAt, doc: 'step at which the bandit schedule runs the outlier test' },
  pairImagesPerClass: { type: 'integer', default: 100, doc: 'clean images per source class a pair is reversed on' },
  pairBatchSize: { type: 'integer', default: patchSchedule.batchSize, doc: 'images per optimisation step' },
  pairTransfer: { type: 'number', default: 0.2, doc: "rise in the share sent to the target by the outliers' trigger that adds a pair by transfer" },
  pairWarmup: { type: 'integer', default: defaultSchedulerOptions.warmup, doc: 'lockstep steps before the bandit schedule stops any pair' },
  pairConfirm: { type: 'number', default: defaultSchedulerOptions.confirm, doc: 'share of the threshold above which an undecided pair runs on to its own stop' },
} as const satisfies OptionSpecs;

export function pairScanOptions(o: Record<string, unknown>): PairScanOptions {
  const objective = String(o.pairObjective ?? PAIR_SCAN_OPTIONS.pairObjective.default);
  const objectives: ObjectiveKind[] | undefined = objective === 'both' ? ['patch', 'perturbation'] : objective === 'patch' || objective === 'perturbation' ? [objective] : undefined;
  if (!objectives) throw usageError(`option pairs.pairObjective must be patch, perturbation or both, got '${objective}'`);
  const schedule = String(o.pairSchedule ?? PAIR_SCAN_OPTIONS.pairSchedule.default);
  if (schedule !== 'bandit' && schedule !== 'plain') throw usageError(`option pairs.pairSchedule must be bandit or plain, got '${schedule}'`);
  const threshold = positiveOption(o, 'pairs', 'pairThreshold', PAIR_SCAN_OPTIONS.pairThreshold.default);
  const maxSteps = Math.floor(positiveOption(o, 'pairs', 'pairMaxSteps', PAIR_SCAN_OPTIONS.pairMaxSteps.default));
  let decideAt = Math.floor(positiveOption(o, 'pairs', 'pairDecideAt', PAIR_SCAN_OPTIONS.pairDecideAt.default));
  // Running on past the decision only helps when steps are left to separate in; with a step cap
  // close behind it (quick scans), the decision waits for the cap, where every pair that has not
  // stopped sits at the same step, as in the plain schedule.
  if (maxSteps - decideAt < 2 * defaultSchedulerOptions.trendWindow) decideAt = maxSteps;
  return {
    objectives,
    schedule,
    threshold,
    imagesPerClass: Math.floor(positiveOption(o, 'pairs', 'pairImagesPerClass', PAIR_SCAN_OPTIONS.pairImagesPerClass.default)),
    batchSize: Math.floor(positiveOption(o, 'pairs', 'pairBatchSize', PAIR_SCAN_OPTIONS.pairBatchSize.default)),
    maxSteps,
    maxBatch: Math.floor(positiveOption(o, 'pairs', 'maxBatch', 512)),
    transfer: positiveOption(o, 'pairs', 'pairTransfer', PAIR_SCAN_OPTIONS.pairTransfer.default),
    scheduler: {
      ...defaultSchedulerOptions,
      mode: schedule,
      threshold,
      decideAt,
      warmup: Math.floor(positiveOption(o, 'pairs', 'pairWarmup', PAIR_SCAN_OPTIONS.pairWarmup.default)),
      confirm: positiveOption(o, 'pairs', 'pairConfirm', PAIR_SCAN_OPTIONS.pairConfirm.default),
    },
  };
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
 * Trigger transfer. One trigger is reversed for all the outlier pairs of an objective at once
 * (each pair's source images sent to its own target, in one optimisation), then stamped into the
 * clean images of every class; when it sends most of a class's images to some class d, at least
 * `transfer` more of them than the model sends there unstamped, the pair (class, d) carries the
 * same backdoor and joins the detected pairs. An all-to-one backdoor answers to its trigger
 * whatever the class (every class goes to the target), an all-to-all one sends each class to its
 * own target, and a trigger shared by several pairs is the attacker's rather than one pair's
 * shortcut; so the outliers find the other backdoor pairs without relying on the weaker pair
 * statistics near the threshold.
 */
async function transferredPairs(ctx: AnalysisContext, data: Dataset, images: number[][], runs: PairRun[], o: PairScanOptions, gradient: BatchGradient, geometry: SampleGeometry): Promise<{ notes: string[]; sampleGradients: number }> {
  const notes: string[] = [];
  let sampleGradients = 0;
  const K = images.length;
  const sent = async (d: Dataset) => {
    const labels = (await predict(ctx.model.onnx, d, ctx.runtime, { signal: ctx.signal })).labels;
    const share = new Float64Array(K);
    for (const c of labels) share[c] += 1 / d.n;
    return share;
  };
  const unstamped = new Map<number, Float64Array>();
  for (const [oi, kind] of o.objectives.entries()) {
    const outliers = runs.filter((r) => r.kind === kind && r.via === 'outlier');
    if (outliers.length === 0) continue;
    const targets = new Map<number, number>();
    for (const r of outliers) for (const i of images[r.source]) targets.set(i, r.target);
    const schedule: ScheduleOptions = { ...(kind === 'patch' ? patchSchedule : perturbationSchedule), batchSize: 16, maxSteps: o.maxSteps };
    const shared = makeTask(30_000 + oi, kind, outliers[0].target, [...targets.keys()].sort((a, b) => a - b), geometry, schedule, ctx.seed, targets);
    const stats = await runTasks([shared], { ...defaultSchedulerOptions, mode: 'plain' }, data, gradient, { maxBatch: o.maxBatch, signal: ctx.signal });
    sampleGradients += stats.sampleGradients;
    if (!shared.succeeded) {
      notes.push(`${kind}: no single trigger moved all ${outliers.length} outlier pairs at once; no pairs added by transfer`);
      continue;
    }
    const trigger = shared.objective.toTrigger(outliers[0].target, [], shared.bestParams);
    const joined: string[] = [];
    for (let c = 0; c < K; c++) {
      if (images[c].length === 0) continue;
      if (!unstamped.has(c)) unstamped.set(c, await sent(subset(data, images[c])));
      const base = unstamped.get(c)!, stamped = await sent(stampTrigger(trigger, data, images[c]));
      let d = -1;
      for (let k = 0; k < K; k++) if (k !== c && stamped[k] >= 0.5 && stamped[k] - base[k] >= o.transfer) d = k;
      if (d < 0) continue;
      const r = runs.find((x) => x.source === c && x.target === d && x.kind === kind)!;
      joined.push(`${c} → ${d} (${(100 * base[d]).toFixed(0)}→${(100 * stamped[d]).toFixed(0)}%)`);
      r.rate = stamped[d];
      if (!r.via) Object.assign(r, { via: 'transfer', from: outliers.reduce((a, b) => (b.anomalyIndex > a.anomalyIndex ? b : a)) });
    }
    notes.push(`${kind}: one trigger reversed for the outlier pair${outliers.length > 1 ? 's' : ''} ${outliers.map((r) => `${r.source} → ${r.target}`).join(', ')} (size ${shared.size.toFixed(2)}) moves ${joined.join(', ') || 'no class'} (share sent, unstamped → stamped)`);
  }
  return { notes, sampleGradients };
}

/** Runs the class-pair scan; `progress` takes this scan's own fraction. */
export async function scanClassPairs(
  ctx: AnalysisContext,
  data: Dataset,
  K: number,
  gradient: BatchGradient,
  geometry: SampleGeometry,
  o: PairScanOptions,
  progress: (fraction: number, text: string) => void,
): Promise<AnalysisOutput & { triggers: ReversedTrigger[] }> {
    const images = imagesByClass(data, K, o.imagesPerClass, ctx.seed);
    const missing = images.flatMap((list, c) => (list.length === 0 ? [c] : []));
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
        onRound: (done, total) => progress((oi + done / total) / o.objectives.length, `reversing ${kind} triggers for ${total} class pairs (${done} settled)`),
      });
      sampleGradients += stats.sampleGradients;
      mine.forEach((r, i) => (r.statistic = stats.statistics[i]));
      const steps = mine.reduce((s, r) => s + r.task.step, 0);
      notes.push(`${kind}: ${mine.length} pairs, ${o.schedule} schedule, ${steps} steps of ${schedule.batchSize} images (${stats.sampleGradients} image gradients in ${stats.calls} batched calls)${o.schedule === 'bandit' ? `; after ${o.scheduler.warmup} lockstep warm-up steps ${stats.dropped} pairs stopped early as unable to become outliers, the outlier test ran at step ${o.scheduler.decideAt} on all pairs at that common step, and ${stats.outliers} outlier pair(s) and ${stats.confirmed} undecided pair(s) with an anomaly index above ${o.scheduler.confirm * o.scheduler.threshold} ran on to their own stop for the final test` : ''}`);
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
    const transfer = await transferredPairs(ctx, data, images, runs, o, gradient, geometry);
    notes.push(...transfer.notes);
    sampleGradients += transfer.sampleGradients;
    const flaggedRuns = runs.filter((p) => p.via);
    const pairs: PairResult[] = runs.map((p) => ({ source: p.source, target: p.target, statistic: p.statistic, anomalyIndex: p.anomalyIndex, flagged: !!p.via, method: `pairs:classPairs:${p.kind}` }));
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
          : `Class pair ${p.source} → ${p.target} carries the same backdoor: the trigger reversed for the outlier pairs sends ${(100 * p.rate!).toFixed(0)}% of class-${p.source} images to class ${p.target} (the pair's own statistic ${p.statistic.toFixed(4)}, anomaly index ${p.anomalyIndex.toFixed(1)}). Target class ${p.target}.`,
      location: { pair: { source: p.source, target: p.target } },
    }));
    const triggers: ReversedTrigger[] = flaggedRuns.map(triggerOf);
    const artifacts: ArtifactImage[] = flaggedRuns.flatMap((p, i) =>
      triggerArtifacts(triggers[i], data, images[p.source][0], { stem: `pair-${p.source}-${p.target}${o.objectives.length > 1 ? `-${p.kind}` : ''}`, pair: { source: p.source, target: p.target } }),
    );
    const evidence: VerdictEvidence[] = o.objectives.map((kind) => {
      const mine = runs.filter((p) => p.kind === kind);
      const top = mine.reduce((a, b) => (b.anomalyIndex > a.anomalyIndex && b.statistic > 0 ? b : a), mine[0]);
      const hit = dedupe(mine.filter((p) => p.via));
      const kindTargets = [...new Set(hit.map((p) => p.target))].sort((a, b) => a - b);
      return {
        method: `pairs:classPairs:${kind}`,
        statistic: `anomaly index of ${kind === 'patch' ? '1/|m|₁' : '1/‖v‖₂'} over the ${mine.length} class pairs`,
        value: top?.anomalyIndex ?? 0,
        threshold: o.threshold,
        direction: 'above',
        thresholdSource: `BNA's default (${o.threshold}), not calibrated; --option pairs.pairThreshold`,
        flagged: hit.length > 0,
        targets: kindTargets,
        attackType: classifyAttack(hit),
        summary: top ? `pairs:classPairs:${kind}: ${top.source} → ${top.target} anomaly index ${top.anomalyIndex.toFixed(1)} ${top.anomalyIndex > o.threshold ? '>' : '≤'} ${o.threshold}${hit.length ? `; ${hit.length} pair(s) detected, target(s) ${kindTargets.join(', ')}` : ''}` : `pairs:classPairs:${kind}: no pairs`,
      };
    });
    if (targets.length) notes.push(`detected ${detected.length} pair${detected.length === 1 ? '' : 's'} with target${targets.length === 1 ? '' : 's'} ${targets.join(', ')} (${attackType}): ${flaggedRuns.filter((p) => p.via === 'outlier').length} MAD outlier(s), the rest by trigger transfer (the outliers' trigger sends most of a class, ≥${Math.round(100 * o.transfer)} points more than unstamped, to one class)`);
    return { findings, pairs, targets, attackType, backdoored: detected.length > 0, evidence, threshold: o.threshold, artifacts, gradientEvaluations: sampleGradients, notes, triggers };
}

function dedupe(pairs: { source: number; target: number }[]) {
  const seen = new Set<string>();
  return pairs.filter((p) => !seen.has(`${p.source},${p.target}`) && seen.add(`${p.source},${p.target}`));
}
