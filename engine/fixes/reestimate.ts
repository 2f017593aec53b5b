/**
 * Re-estimating a trigger for a fix: the detectors' own reversal (same objective and schedule)
 * run on the images a fix works with, toward one target. BNA re-estimates on all the target's
 * source classes (the paper's step); unlearning re-estimates against its current weights, so it
 * unlearns what still works rather than only what worked before it started. Only the kinds the
 * detectors have an objective for can be re-estimated; other kinds are used as handed over.
 */
import { defaultSchedulerOptions } from '../analyses/reversal/karm';
import { GradientSession } from '../autodiff';
import type { BatchGradient } from '../analyses/reversal/batch';
import type { ObjectiveKind } from '../analyses/reversal/objectives';
import { geometryOf, makeTask, runTasks } from '../analyses/reversal/run';
import { scheduleFor } from '../analyses/reversal/task';
import type { ReversedTrigger } from '../analyses/reversal/trigger';
import type { Dataset } from '../data/types';
import { imageInputOf } from '../evaluate';
import type { OnnxModel } from '../graph/model';
import { promoteInitializers } from '../graph/surgery';
import type { Runtime } from '../runtime/session';
import type { Tensor } from '../tensor';
import { weightFeeds } from './fine-tune';

/** Kinds with a reversal objective. */
export const REESTIMABLE: readonly string[] = ['patch', 'perturbation', 'warp'];

export interface Reestimated {
  trigger?: ReversedTrigger;
  kind: string;
  size: number;
  steps: number;
}

export interface ReestimateOptions {
  seed: number;
  maxSteps?: number;
  batchSize?: number;
  /** The share of images the trigger must move (default: the detectors' own for the kind). */
  success?: number;
  signal?: AbortSignal;
}

/** One trigger to reverse again: its kind, target and the source classes it names, on these images. */
export interface ReestimateRequest {
  kind: string;
  target: number;
  sources: number[];
  images: number[];
  /** Task id (seeds its random start). */
  id: number;
}

/** Reverses each requested trigger again, all in one plain schedule; one result per request, in order. */
export async function reestimateAll(requests: readonly ReestimateRequest[], data: Dataset, gradient: BatchGradient, options: ReestimateOptions): Promise<Reestimated[]> {
  const geometry = geometryOf(data);
  const tasks = requests.map((r) => {
    const schedule = { ...scheduleFor(r.kind as ObjectiveKind), batchSize: options.batchSize ?? 32, ...(options.maxSteps ? { maxSteps: options.maxSteps } : {}), ...(options.success ? { successThreshold: options.success } : {}) };
    return makeTask(r.id, r.kind as ObjectiveKind, r.target, r.images, geometry, schedule, options.seed);
  });
  await runTasks(tasks, { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: tasks.length }, data, gradient, { maxBatch: 512, signal: options.signal });
  return requests.map((r, i) => {
    const task = tasks[i];
    return { kind: r.kind, size: task.size, steps: task.step, ...(task.succeeded ? { trigger: task.objective.toTrigger(r.target, r.sources, task.bestParams) } : {}) };
  });
}

export async function reestimate(kind: string, target: number, sources: number[], images: number[], data: Dataset, gradient: BatchGradient, options: ReestimateOptions & { id: number }): Promise<Reestimated> {
  const [one] = await reestimateAll([{ kind, target, sources, images, id: options.id }], data, gradient, options);
  return one;
}

/**
 * An input gradient (weighted target cross-entropy, as trigger reversal uses) of the model with
 * the named weights fed per call: reversal against weights that are still being trained.
 */
export async function inputGradientWithWeights(runtime: Runtime, model: OnnxModel, weights: ReadonlyMap<string, Float32Array>, dims: ReadonlyMap<string, number[]>): Promise<BatchGradient> {
  const input = imageInputOf(model).name;
  const logits = model.outputs()[0].name;
  const { model: promoted } = promoteInitializers(model, [...weights.keys()]);
  const session = await GradientSession.create(runtime, promoted, { loss: { kind: 'target-cross-entropy' }, weighted: true, wrt: [input], fetch: [logits], logits });
  return async ({ x, dims: xDims, labels, weights: w }) => {
    const inputs: Record<string, Tensor> = { [input]: { dtype: 'float32', dims: xDims, data: x }, ...weightFeeds(weights, dims) };
    const r = await session.run({ inputs, labels, weights: w });
    return { dx: r.grads[input], logits: r.fetched[logits].data as Float32Array };
  };
}
