/**
 * The many-class plan of trigger reversal (methods/pairs.ts above `pairs.manyClasses` classes):
 * split the classes in half (one half reversed on, the other confirms, so one image per class is
 * enough), pre-screen every target and shift with one universal trigger per kind (prescreen.ts),
 * and keep the most-pulled candidates plus random references for the screens. What it costs and
 * misses: docs/detection.md, "Many classes".
 */
import type { Dataset } from '../../data/types';
import type { OnnxModel } from '../../graph/model';
import { imagesPerCall } from '../../runtime/batch';
import type { Runtime } from '../../runtime/session';
import { SeededRandom } from '../stats/random';
import type { BatchGradient } from './batch';
import type { ObjectiveKind, SampleGeometry } from './objectives';
import { candidatesOf, prescreen, type Prescreen } from './prescreen';
import { mappingIndices } from './targets';

export interface ManyClassOptions {
  /** Above this many classes the plan runs. */
  manyClasses: number;
  /** Targets, and shifts, the pre-screen keeps for reversal (each). */
  keep: number;
  /** Further targets, and shifts, drawn at random that R's median is taken over. */
  references: number;
  /** The pre-screen's universal trigger kinds, steps each, and images its pull is measured on. */
  prescreenObjectives: ObjectiveKind[];
  prescreenSteps: number;
  prescreenImages: number;
  /** Images per optimisation step. */
  batchSize: number;
  imagesPerClass: number;
  heldOutPerClass: number;
}

export interface ManyClassPlan {
  pre: Prescreen;
  targets: { kept: number[]; reference: number[] };
  shifts: { kept: number[]; reference: number[] };
}

/** Half the classes, seeded, give their images to the screens; the other half's images confirm. */
export function splitClassesInHalf(all: number[][], o: ManyClassOptions, seed: number): { images: number[][]; held: number[][] } {
  const K = all.length;
  const reversedOn = new Set(new SeededRandom(SeededRandom.derive(seed, 7919, K)).shuffle(all.map((_, c) => c)).slice(0, Math.ceil(K / 2)));
  return {
    images: all.map((l, c) => (reversedOn.has(c) ? l.slice(0, o.imagesPerClass) : [])),
    held: all.map((l, c) => (reversedOn.has(c) ? [] : l.slice(0, o.heldOutPerClass))),
  };
}

/** Images per gradient or prediction call of the plan: `maxBatch` at most, bounded by the image's size (runtime/batch.ts). */
export function boundedBatch(maxBatch: number, geometry: SampleGeometry): number {
  return imagesPerCall(geometry.channels * geometry.height * geometry.width, maxBatch);
}

/** The pre-screen over the reversed-on images, and the candidates and references it leaves. */
export async function planManyClasses(
  model: OnnxModel, runtime: Runtime, data: Dataset, images: number[][], K: number, geometry: SampleGeometry, gradient: BatchGradient,
  o: ManyClassOptions, maxBatch: number, seed: number, signal: AbortSignal | undefined,
  progress: (fraction: number, stage: string) => void,
): Promise<ManyClassPlan> {
  const pre = await prescreen(model, runtime, data, images.flat(), K, geometry, gradient, { kinds: o.prescreenObjectives, batchSize: o.batchSize, steps: o.prescreenSteps, sampleImages: o.prescreenImages, maxBatch }, seed, signal, (f, spent, budget) =>
    progress(f, `pre-screen step ${spent}/${budget} (${o.prescreenObjectives.length} universal triggers for ${K} classes)`),
  );
  return {
    pre,
    targets: candidatesOf(pre.targetPull, mappingIndices('targets', K), o.keep, o.references, seed, 1),
    shifts: candidatesOf(pre.shiftPull, mappingIndices('shifts', K), o.keep, o.references, seed, 2),
  };
}

/** What the plan did, for the method's notes. */
export function planNotes(plan: ManyClassPlan, K: number, o: ManyClassOptions, images: number[][], held: number[][]): string[] {
  const list = (xs: number[]) => xs.join(', ');
  const top = [...plan.pre.targetPull.keys()].sort((a, b) => plan.pre.targetPull[b] - plan.pre.targetPull[a]).slice(0, 3);
  const reversedOn = images.filter((l) => l.length).length, heldOut = held.filter((l) => l.length).length;
  const perClass = Math.max(...images.map((l) => l.length), ...held.map((l) => l.length));
  return [
    `many classes (K = ${K} > ${o.manyClasses}): a pre-screen ranked all ${K} targets and ${K - 1} shifts; kept ${plan.targets.kept.length} targets (${list(plan.targets.kept)}) and ${plan.shifts.kept.length} shifts (${list(plan.shifts.kept)}) for reversal`,
    `pre-screen: one untargeted universal trigger per kind (${plan.pre.runs.map((r) => `${r.kind} size ${r.size.toFixed(2)}${r.succeeded ? '' : ', never moved ≥ its success share'}`).join('; ')}), stamped on ${plan.pre.sampled} images; pull = mean rise of p_t on other classes' images (top: ${top.map((t) => `${t} ${plan.pre.targetPull[t].toFixed(3)}, anomaly ${plan.pre.targetAnomaly[t].toPrecision(3)}`).join('; ')})`,
    `R's median is over ${plan.targets.reference.length} random reference targets (${list(plan.targets.reference)}) and ${plan.shifts.reference.length} reference shifts (${list(plan.shifts.reference)}), standing for all ${K}; the thresholds were calibrated at K = 10 and are not calibrated for K = ${K}`,
    `classes split in half (seeded): ${reversedOn} classes reversed on, ${heldOut} held out to confirm a trigger${perClass <= 1 ? '; 1 image per class: a moved class is one image, so confirmation counts classes, not shares' : ''}`,
  ];
}
