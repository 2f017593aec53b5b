/**
 * Drives a set of reversal tasks to the end under a scheduler, one batched gradient call per round,
 * and builds tasks from the options the analyses share.
 */
import { pixelRange, type Dataset } from '../../data/types';
import { TriggerScheduler, type SchedulerOptions } from './karm';
import { SeededRandom } from '../stats/random';
import { advanceTasks, type BatchGradient } from './batch';
import { PatchObjective, PerturbationObjective, WarpObjective, type ObjectiveKind, type Objective, type SampleGeometry } from './objectives';
import { ReversalTask, type ScheduleOptions } from './task';

export function geometryOf(data: Dataset): SampleGeometry {
  const p = data.preprocess;
  return { channels: p.channels, height: p.height, width: p.width, layout: p.layout, range: pixelRange(p) };
}

/** Masks start uniform in [0, 0.1): small, so optimisation grows them where needed instead of first shrinking a half-covered image. */
export const MASK_INIT_SCALE = 0.1;

export function makeTask(id: number, kind: ObjectiveKind, target: number, images: number[], geometry: SampleGeometry, schedule: ScheduleOptions, seed: number, targets?: ReadonlyMap<number, number>, away = false): ReversalTask {
  const rng = new SeededRandom(SeededRandom.derive(seed, id, 1));
  const objective: Objective = kind === 'patch' ? new PatchObjective(geometry, () => rng.next(), MASK_INIT_SCALE) : kind === 'warp' ? new WarpObjective(geometry) : new PerturbationObjective(geometry);
  return new ReversalTask(id, target, images, objective, schedule, SeededRandom.derive(seed, id, 2), targets, away);
}

export interface RunStats {
  sampleGradients: number;
  calls: number;
  rounds: number;
  dropped: number;
  /** The statistic 1/size per task that the outlier test uses (see karm.ts). */
  statistics: number[];
  /** Tasks the bandit found to be outliers at its decision step. */
  outliers: number;
  /** Undecided tasks the bandit ran on to their own stop before the final test. */
  confirmed: number;
}

export async function runTasks(
  tasks: ReversalTask[],
  scheduler: SchedulerOptions,
  data: Dataset,
  gradient: BatchGradient,
  options: { maxBatch: number; signal?: AbortSignal; onRound?(done: number, total: number, fraction: number): void },
): Promise<RunStats> {
  const s = new TriggerScheduler(tasks, scheduler);
  const stats: RunStats = { sampleGradients: 0, calls: 0, rounds: 0, dropped: 0, statistics: [], outliers: 0, confirmed: 0 };
  // The share of the step budget spent (a stopped task counts whole): moves every round, unlike the count of stopped tasks.
  const spent = () => tasks.reduce((sum, t) => sum + (t.running ? Math.min(t.step / t.options.maxSteps, 1) : 1), 0) / Math.max(tasks.length, 1);
  options.onRound?.(0, tasks.length, 0);
  for (;;) {
    options.signal?.throwIfAborted();
    const next = s.next();
    if (next.length === 0) break;
    const r = await advanceTasks(next, data, gradient, options.maxBatch, options.signal);
    stats.sampleGradients += r.sampleGradients;
    stats.calls += r.calls;
    stats.rounds++;
    options.onRound?.(tasks.filter((t) => !t.running).length, tasks.length, spent());
  }
  stats.dropped = s.dropped.size;
  stats.outliers = s.outliers.size;
  stats.confirmed = s.confirming.size;
  stats.statistics = s.statistics();
  return stats;
}
