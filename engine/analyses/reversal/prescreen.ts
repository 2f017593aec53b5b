/**
 * The many-class pre-screen (methods/pairs.ts, K above `pairs.manyClasses`): one cheap pass that
 * ranks every target class and every class shift, so that the reversal screens run on a few
 * candidates instead of K targets and K − 1 shifts.
 *
 * Per trigger kind, ONE untargeted universal trigger is reversed on the images of all classes:
 * it must move every image away from its own class, to any other ('away' goal), at the smallest
 * size (Neural Cleanse's schedule). A backdoor trigger is such a universal change, and the
 * cheapest one the network has, so the optimisation tends to find it, and the images it moves go
 * to the backdoor's target (all-to-one) or to c + k (all-to-all). The trigger is then stamped on a
 * sample of the images, and for every class t the pull is the mean rise of p_t (softmax) over the
 * images of the other classes, stamped against unstamped; for every shift k the same for
 * p_{(c+k) mod K} over all the images. Its cost does not grow with K: one task per kind, and two
 * forward passes of the sample.
 */
import { subset, type Dataset } from '../../data/types';
import { predict } from '../../evaluate';
import type { OnnxModel } from '../../graph/model';
import type { Runtime } from '../../runtime/session';
import { madAnomaly } from '../stats/mad';
import { softmaxRows } from '../stats/softmax';
import { SeededRandom } from '../stats/random';
import { defaultSchedulerOptions } from './karm';
import type { BatchGradient } from './batch';
import type { ObjectiveKind, SampleGeometry } from './objectives';
import { makeTask, runTasks } from './run';
import { scheduleFor } from './task';
import { stampTrigger } from './trigger';

export interface PrescreenOptions {
  kinds: readonly ObjectiveKind[];
  /** Images per optimisation step, and steps of each universal trigger. */
  batchSize: number;
  steps: number;
  /** Images the pull is measured on, at most. */
  sampleImages: number;
  /** Images per gradient or prediction call at most (bounds memory). */
  maxBatch: number;
}

export interface Prescreen {
  /** Per target class: the largest pull over the kinds (mean rise of p_t on the other classes' images). */
  targetPull: Float64Array;
  /** Per shift k (index k, 0 unused): the largest pull over the kinds (mean rise of p_{(c+k) mod K}). */
  shiftPull: Float64Array;
  /** MAD anomaly index of each target's pull over all K classes (above the median). */
  targetAnomaly: number[];
  sampleGradients: number;
  /** Per kind: the universal trigger's size, whether it moved ≥ its success share, and the images sampled. */
  runs: { kind: ObjectiveKind; size: number; succeeded: boolean }[];
  sampled: number;
}

/** Task ids above the screens' (SCREEN_ID_BASE + 16·K for K ≤ 4 096) and the class pairs'. */
const PRESCREEN_ID_BASE = 200_000;

export async function prescreen(
  model: OnnxModel,
  runtime: Runtime,
  data: Dataset,
  images: readonly number[],
  K: number,
  geometry: SampleGeometry,
  gradient: BatchGradient,
  o: PrescreenOptions,
  seed: number,
  signal: AbortSignal | undefined,
  progress: (fraction: number, spent: number, budget: number) => void,
): Promise<Prescreen> {
  const sample = new SeededRandom(SeededRandom.derive(seed, 104_729, 0)).shuffle([...images]).slice(0, o.sampleImages).sort((a, b) => a - b);
  const labels = data.labels!;
  // Predictions in calls of maxBatch too: 128 images of 224×224 through a ResNet-50 hold GBs.
  const clean = softmaxRows((await predict(model, subset(data, sample), runtime, { signal, batchSize: o.maxBatch })).logits, K);
  const targetPull = new Float64Array(K).fill(-Infinity);
  const shiftPull = new Float64Array(K).fill(-Infinity);
  shiftPull[0] = 0;
  const runs: Prescreen['runs'] = [];
  let sampleGradients = 0;
  const budget = o.kinds.length * o.steps;
  for (const [i, kind] of o.kinds.entries()) {
    const schedule = { ...scheduleFor(kind), batchSize: o.batchSize, maxSteps: o.steps };
    const task = makeTask(PRESCREEN_ID_BASE + i, kind, -1, [...images].sort((a, b) => a - b), geometry, schedule, seed, undefined, true);
    const stats = await runTasks([task], { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: 1 }, data, gradient, {
      maxBatch: o.maxBatch,
      signal,
      onRound: () => progress((i * o.steps + (task.running ? task.step : o.steps)) / budget, i * o.steps + (task.running ? task.step : o.steps), budget),
    });
    sampleGradients += stats.sampleGradients;
    runs.push({ kind, size: task.size, succeeded: task.succeeded });
    const trigger = task.objective.toTrigger(-1, [], task.bestParams ?? task.objective.params);
    const stamped = softmaxRows((await predict(model, stampTrigger(trigger, data, sample), runtime, { signal, batchSize: o.maxBatch })).logits, K);
    const rise = new Float64Array(K), others = new Float64Array(K), shift = new Float64Array(K);
    sample.forEach((idx, r) => {
      const y = labels[idx];
      for (let t = 0; t < K; t++) {
        const d = stamped[r * K + t] - clean[r * K + t];
        if (t !== y) (rise[t] += d), others[t]++;
        shift[(t - y + K) % K] += d;
      }
    });
    for (let t = 0; t < K; t++) targetPull[t] = Math.max(targetPull[t], others[t] ? rise[t] / others[t] : 0);
    for (let k = 1; k < K; k++) shiftPull[k] = Math.max(shiftPull[k], shift[k] / sample.length);
  }
  const { anomalyIndex, median } = madAnomaly([...targetPull]);
  return { targetPull, shiftPull, targetAnomaly: anomalyIndex.map((a, t) => (targetPull[t] > median ? a : 0)), sampleGradients, runs, sampled: sample.length };
}

/**
 * The candidates (the `keep` mappings with the largest pull) and `reference` mappings drawn at
 * random, seeded, from the rest: those stand for the population in the screens' median.
 */
export function candidatesOf(pull: Float64Array, indices: readonly number[], keep: number, reference: number, seed: number, salt: number): { kept: number[]; reference: number[] } {
  const ranked = [...indices].sort((a, b) => pull[b] - pull[a] || a - b);
  const kept = ranked.slice(0, keep);
  const rest = new SeededRandom(SeededRandom.derive(seed, 104_729, salt)).shuffle(ranked.slice(keep));
  return { kept: kept.sort((a, b) => a - b), reference: rest.slice(0, reference).sort((a, b) => a - b) };
}
