/**
 * Screens of class mappings: for every mapping of a family and every trigger kind, ONE trigger
 * reversed on clean images of all the classes the mapping moves, and a ratio statistic over the
 * family's mappings.
 *
 *  targets (all-to-one): mapping t sends every class c ≠ t to t — Neural Cleanse's per-label task;
 *  shifts  (all-to-all): mapping k sends every class c to (c + k) mod K — the all-to-all backdoor
 *          as BadNets, Neural Cleanse and BackdoorBench define it (k = 1), for every k.
 *
 * Why one trigger for all the classes a mapping moves: a backdoor trigger is universal — the same
 * small change moves every class — while the small triggers a single class pair admits naturally
 * (sneaker → sandal, shirt → T-shirt) move one class only. On the development zoo a 3×3 BadNets
 * patch reverses to |m|₁ ≈ 5 for its target against 15–90 for the other targets, while single
 * class pairs of clean models reach |m|₁ ≈ 5 between natural neighbours (docs/detection.md).
 *
 * Statistic: R = median size / smallest size over the family's mappings, the factor by which the
 * easiest mapping's trigger is smaller than a typical one. It is scale-free (the same for any
 * input size or trigger norm) and, unlike a MAD anomaly index over ten values, does not shrink
 * when the natural mappings happen to spread widely.
 */
import type { Dataset } from '../../data/types';
import { defaultSchedulerOptions } from './karm';
import { median } from '../stats/mad';
import type { BatchGradient } from './batch';
import type { ObjectiveKind, SampleGeometry } from './objectives';
import { makeTask, runTasks } from './run';
import { scheduleFor, type ReversalTask } from './task';

export type MappingFamily = 'targets' | 'shifts';

/** Mapping `index` of a family: the class it sends class c to, or null when c does not take part. */
export function mappedClass(family: MappingFamily, index: number, c: number, K: number): number | null {
  if (family === 'targets') return c === index ? null : index;
  return (c + index) % K;
}

/** The mappings of a family: targets 0…K−1, shifts 1…K−1. */
export function mappingIndices(family: MappingFamily, K: number): number[] {
  return family === 'targets' ? Array.from({ length: K }, (_, t) => t) : Array.from({ length: K - 1 }, (_, k) => k + 1);
}

export interface ScreenOptions {
  /** Images of each class a mapping's task draws from. */
  imagesPerClass: number;
  /** Images per optimisation step. */
  batchSize: number;
  /** Steps every task runs at most (Neural Cleanse's own stop rule may end it earlier). */
  maxSteps: number;
  maxBatch: number;
}

export interface MappingScreen {
  family: MappingFamily;
  kind: ObjectiveKind;
  /** The mappings screened (target classes, or shifts k). */
  indices: number[];
  /** One task per mapping, in `indices` order. */
  tasks: ReversalTask[];
  /** Trigger size per mapping: the smallest successful one, else the last (see ReversalTask.size). */
  sizes: number[];
  succeeded: boolean[];
  /** The many-class plan's reference mappings, over which alone the median is taken (see ScreenRequest). */
  reference?: readonly number[];
  /** The median trigger size; the mapping with the smallest trigger, and R = median size / its size. */
  median: number;
  best: number;
  ratio: number;
}

/** Task ids of the screens live above the class-pair ids (K² per objective). */
const SCREEN_ID_BASE = 50_000;

export interface ScreenRequest {
  family: MappingFamily;
  kinds: readonly ObjectiveKind[];
  /**
   * The many-class plan (methods/pairs.ts): screen only these mappings, the pre-screen's candidates
   * and `reference` (default: every mapping of the family).
   */
  only?: readonly number[];
  /**
   * Mappings drawn at random from the ones the pre-screen did not keep: R's median is taken over
   * them alone, so that it stays the typical mapping's size, as over all K mappings, and is not
   * pulled down by the candidates, which were kept for being easy.
   */
  reference?: readonly number[];
}

/**
 * Runs every requested screen's tasks side by side (one batched gradient call per round) and
 * returns one MappingScreen per (family, kind).
 */
export async function runScreens(
  requests: readonly ScreenRequest[],
  images: number[][],
  data: Dataset,
  geometry: SampleGeometry,
  gradient: BatchGradient,
  o: ScreenOptions,
  seed: number,
  signal: AbortSignal | undefined,
  progress: (fraction: number, spent: number, budget: number) => void,
): Promise<{ screens: MappingScreen[]; sampleGradients: number }> {
  const K = images.length;
  const plans = requests.flatMap((r, ri) =>
    r.kinds.map((kind, oi) => {
      const schedule = { ...scheduleFor(kind), batchSize: o.batchSize, maxSteps: o.maxSteps };
      const indices = (r.only ? [...r.only].sort((a, b) => a - b) : mappingIndices(r.family, K)).filter((m) => images.some((list, c) => list.length > 0 && mappedClass(r.family, m, c, K) !== null));
      const tasks = indices.map((m) => {
        const targets = new Map<number, number>();
        images.forEach((list, c) => {
          const d = mappedClass(r.family, m, c, K);
          if (d !== null) for (const i of list.slice(0, o.imagesPerClass)) targets.set(i, d);
        });
        const id = SCREEN_ID_BASE + (ri * 8 + oi) * K + m;
        return makeTask(id, kind, r.family === 'targets' ? m : -m, [...targets.keys()].sort((a, b) => a - b), geometry, schedule, seed, r.family === 'targets' ? undefined : targets);
      });
      return { family: r.family, kind, indices, tasks, reference: r.reference };
    }),
  );
  const tasks = plans.flatMap((p) => p.tasks);
  const budget = tasks.length * o.maxSteps;
  const stats = await runTasks(tasks, { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: tasks.length }, data, gradient, {
    maxBatch: o.maxBatch,
    signal,
    onRound: () => {
      const spent = tasks.reduce((s, t) => s + (t.running ? t.step : o.maxSteps), 0);
      progress(spent / budget, spent, budget);
    },
  });
  const screens = plans.map((p) => {
    const sizes = p.tasks.map((t) => t.size);
    const best = sizes.indexOf(Math.min(...sizes));
    const referenceSizes = p.reference ? sizes.filter((_, i) => p.reference!.includes(p.indices[i])) : [];
    const typical = median(referenceSizes.length ? referenceSizes : sizes);
    return {
      ...p,
      sizes,
      succeeded: p.tasks.map((t) => t.succeeded),
      median: typical,
      best: p.indices[best],
      ratio: sizes.length >= 2 ? typical / sizes[best] : 1,
    };
  });
  return { screens, sampleGradients: stats.sampleGradients };
}
