/**
 * Trigger reversal, the default detector (method id `pairs`):
 *
 *  1. target screen: for every target class and trigger kind (patch, additive perturbation, warp),
 *     one trigger that sends clean images of all the other classes to it (reversal/targets.ts);
 *  2. shift screen: for every shift k and kind (patch, perturbation), one trigger that sends each
 *     class c to (c + k) mod K — the all-to-all backdoor;
 *  3. each screen's ratio R = median / smallest trigger size is compared with its threshold,
 *     calibrated on clean models (calibration.ts); a flagged mapping's trigger is then stamped on
 *     held-out images of every class, and the classes it moves become the detected pairs;
 *  4. optionally (`--option pairs.classPairs=true`) the K(K−1) class-pair scan of BNA's paper
 *     (reversal/pairs.ts), for source-specific backdoors and other class mappings.
 *
 * Many classes (K > `manyClasses`, 64 by default): reversing K targets and K − 1 shifts costs
 * ~2 400·K image gradients (K = 1 000: 2.4 M; hours on a 224×224 ResNet-50), so a pre-screen
 * (reversal/prescreen.ts) first ranks every target and shift by the pull of one universal trigger,
 * and the screens reverse only the `keep` most-pulled targets and shifts, plus `references` drawn
 * at random from the rest, over which R's median is taken (docs/detection.md, "Many classes").
 * The classes are split in half: one half's images are reversed on, the other half's confirm, so
 * one image per class is enough. At K ≤ `manyClasses` nothing of this runs.
 */
import type { OptionSpecs } from '../../method-options';
import { subset, type Dataset } from '../../data/types';
import { BackdoorLensError, usageError } from '../../errors';
import { predict } from '../../evaluate';
import type { AttackType, Finding, LabelResult, PairResult, VerdictEvidence } from '../../report/types';
import { networkFamily, screenThreshold, type ScreenKey } from '../reversal/calibration';
import { classCount, imagesByClass } from '../reversal/class-images';
import { boundedBatch, planManyClasses, planNotes, splitClassesInHalf, type ManyClassOptions } from '../reversal/many-classes';
import { positiveOption } from '../positive-option';
import { inputGradient } from '../reversal/gradient';
import type { ObjectiveKind } from '../reversal/objectives';
import { PAIR_SCAN_OPTIONS, pairScanOptions, scanClassPairs } from '../reversal/pairs';
import { geometryOf } from '../reversal/run';
import { mappedClass, runScreens, type MappingScreen } from '../reversal/targets';
import { triggerArtifacts } from '../reversal/trigger-artifacts';
import { stampTrigger, type ReversedTrigger } from '../reversal/trigger';
import type { Analysis, AnalysisContext, AnalysisOutput, ArtifactImage } from '../types';

const KINDS: readonly ObjectiveKind[] = ['patch', 'perturbation', 'warp'];

export interface PairsOptions extends ManyClassOptions {
  /** Trigger kinds of the target screen. */
  objectives: ObjectiveKind[];
  /** Trigger kinds of the shift (all-to-all) screen. */
  shiftObjectives: ObjectiveKind[];
  /** Clean images of each class the screens reverse on. */
  imagesPerClass: number;
  /** Further images of each class, never optimised on, that confirm a flagged trigger. */
  heldOutPerClass: number;
  /** Images per optimisation step, and steps per trigger. */
  batchSize: number;
  maxSteps: number;
  /** Samples per gradient call. */
  maxBatch: number;
  /** Fewest clean images every class needs; with fewer the method reports "not enough data". */
  minImagesPerClass: number;
  /** Share of a class's held-out images a trigger must move for that class to count as moved. */
  moved: number;
  /** A threshold for every screen instead of the calibrated ones. */
  threshold?: number;
  /** Also run the K(K−1) class-pair scan. */
  classPairs: boolean;
  // manyClasses, keep, references, prescreen*: the many-class plan's (reversal/many-classes.ts).
}

function kindList(v: unknown, key: string, fallback: ObjectiveKind[]): ObjectiveKind[] {
  if (v === undefined) return fallback;
  const raw = String(v) === 'both' ? ['patch', 'perturbation'] : String(v).split(',').map((s) => s.trim()).filter(Boolean);
  for (const k of raw) if (!KINDS.includes(k as ObjectiveKind)) throw usageError(`option pairs.${key} takes a comma-separated list of ${KINDS.join(', ')}, got '${String(v)}'`);
  return [...new Set(raw)] as ObjectiveKind[];
}

/** Trigger reversal's options (the per-target and per-shift screens; the class-pair scan's are PAIR_SCAN_OPTIONS). */
export const PAIRS_OPTIONS = {
  objective: { type: 'string', default: KINDS.join(','), doc: `trigger kinds of the per-target screens: a comma-separated list of ${KINDS.join(', ')}, or both (patch and perturbation)` },
  shiftObjective: { type: 'string', default: 'patch,perturbation', doc: 'trigger kinds of the per-shift (all-to-all) screens, as objective' },
  imagesPerClass: { type: 'integer', default: 30, doc: 'clean images per class the triggers are reversed on' },
  heldOutPerClass: { type: 'integer', default: 30, doc: 'further images per class a flagged trigger is confirmed on' },
  batchSize: { type: 'integer', default: 8, doc: 'images per optimisation step' },
  maxSteps: { type: 'integer', default: 60, doc: 'optimisation steps per trigger at most' },
  maxBatch: { type: 'integer', default: 512, doc: 'images per gradient call at most (bounds memory)' },
  minImagesPerClass: { type: 'integer', default: 5, doc: 'fewest clean images every class needs; with fewer, no verdict' },
  moved: { type: 'number', default: 0.5, doc: "share of a class's held-out images a trigger must move for the class to count as moved" },
  threshold: { type: 'number', doc: 'one threshold for every screen instead of the calibrated ones' },
  classPairs: { type: 'boolean', default: false, doc: 'also run the K(K−1) class-pair scan' },
  // The many-class plan. keep and references are fixed numbers, not shares of K: the screens' cost
  // is then that of a 16-class model whatever K is, and 8 + 8 is what a 16-class scan reverses.
  manyClasses: { type: 'integer', default: 64, doc: 'above this many classes, a pre-screen ranks all targets and shifts and only candidates are reversed' },
  keep: { type: 'integer', default: 8, doc: 'many classes: targets, and shifts, with the largest pre-screen pull that are reversed (each)' },
  references: { type: 'integer', default: 8, doc: "many classes: random further targets, and shifts, reversed as the population R's median is taken over" },
  prescreenObjective: { type: 'string', default: 'patch,perturbation', doc: "many classes: kinds of the pre-screen's universal trigger, as objective" },
  prescreenSteps: { type: 'integer', default: 60, doc: "many classes: optimisation steps of each pre-screen trigger" },
  prescreenImages: { type: 'integer', default: 256, doc: "many classes: images the pre-screen's pull is measured on, at most" },
} as const satisfies OptionSpecs;

export function pairsOptions(o: Record<string, unknown>): PairsOptions {
  const moved = positiveOption(o, 'pairs', 'moved', PAIRS_OPTIONS.moved.default);
  if (moved > 1) throw usageError(`option pairs.moved is a share in (0, 1], got ${moved}`);
  const classPairs = o.classPairs === undefined ? false : String(o.classPairs) === 'true' ? true : String(o.classPairs) === 'false' ? false : undefined;
  if (classPairs === undefined) throw usageError(`option pairs.classPairs must be true or false, got '${String(o.classPairs)}'`);
  return {
    objectives: kindList(o.objective, 'objective', [...KINDS]),
    shiftObjectives: kindList(o.shiftObjective, 'shiftObjective', ['patch', 'perturbation']),
    imagesPerClass: Math.floor(positiveOption(o, 'pairs', 'imagesPerClass', PAIRS_OPTIONS.imagesPerClass.default)),
    heldOutPerClass: Math.floor(positiveOption(o, 'pairs', 'heldOutPerClass', PAIRS_OPTIONS.heldOutPerClass.default)),
    batchSize: Math.floor(positiveOption(o, 'pairs', 'batchSize', PAIRS_OPTIONS.batchSize.default)),
    maxSteps: Math.floor(positiveOption(o, 'pairs', 'maxSteps', PAIRS_OPTIONS.maxSteps.default)),
    maxBatch: Math.floor(positiveOption(o, 'pairs', 'maxBatch', PAIRS_OPTIONS.maxBatch.default)),
    minImagesPerClass: Math.floor(positiveOption(o, 'pairs', 'minImagesPerClass', PAIRS_OPTIONS.minImagesPerClass.default)),
    moved,
    ...(o.threshold !== undefined ? { threshold: positiveOption(o, 'pairs', 'threshold', 1) } : {}),
    classPairs,
    manyClasses: Math.floor(positiveOption(o, 'pairs', 'manyClasses', PAIRS_OPTIONS.manyClasses.default)),
    keep: Math.floor(positiveOption(o, 'pairs', 'keep', PAIRS_OPTIONS.keep.default)),
    references: Math.floor(positiveOption(o, 'pairs', 'references', PAIRS_OPTIONS.references.default)),
    prescreenObjectives: kindList(o.prescreenObjective, 'prescreenObjective', ['patch', 'perturbation']),
    prescreenSteps: Math.floor(positiveOption(o, 'pairs', 'prescreenSteps', PAIRS_OPTIONS.prescreenSteps.default)),
    prescreenImages: Math.floor(positiveOption(o, 'pairs', 'prescreenImages', PAIRS_OPTIONS.prescreenImages.default)),
  };
}

const sizeText = (kind: ObjectiveKind, size: number) => (kind === 'patch' ? `|m|₁ ${size.toFixed(1)}` : kind === 'warp' ? `‖d‖₂ ${size.toFixed(2)} px` : `‖v‖₂ ${size.toFixed(2)}`);
const kindText = (kind: ObjectiveKind) => (kind === 'patch' ? 'patch' : kind === 'warp' ? 'warp' : 'additive perturbation');

/** A screen's verdict: its threshold, whether it flagged, and the classes its best trigger moves on held-out images. */
interface ScreenDecision {
  screen: MappingScreen;
  key: ScreenKey;
  threshold: number;
  thresholdSource: string;
  flagged: boolean;
  trigger?: ReversedTrigger;
  /** Per class: the share of its held-out images the best trigger sends to the class the mapping names. */
  movedShare?: number[];
  /** Classes moved (share ≥ the `moved` option), with their destinations. */
  pairs: { source: number; target: number; share: number }[];
  /** Classes with held-out images the mapping moves: K − 1 targets' sources or K shifted classes, unless the many-class plan held out half. */
  movable: number;
}

/** Why the data cannot support the screens, if it cannot. */
export function dataShortfall(counts: readonly number[], min: number): string | undefined {
  if (counts.length < 2) return `the model has ${counts.length} output class${counts.length === 1 ? '' : 'es'}; trigger reversal needs two or more`;
  const short = counts.flatMap((n, c) => (n < min ? [`class ${c}: ${n}`] : []));
  if (short.length === 0) return undefined;
  return `not enough data for trigger reversal: it needs ≥ ${min} clean image${min === 1 ? '' : 's'} of every class, and ${short.length} of ${counts.length} classes ${short.length === 1 ? 'has' : 'have'} fewer (${short.slice(0, 4).join(', ')}${short.length > 4 ? ', …' : ''})`;
}

/**
 * Per class: the share of its held-out images the trigger sends to the class `destination` names,
 * minus the share that already lands there unstamped, so a class the model predicts anyway (a
 * dominant class, an untrained network) is not "moved" by a trigger that changes nothing.
 */
async function shareMoved(ctx: AnalysisContext, data: Dataset, trigger: ReversedTrigger, held: number[][], destination: (c: number) => number | null, clean: CleanHeldOut, bounded?: { maxBatch: number }): Promise<number[]> {
  const landed = (labels: ArrayLike<number>, from: number, list: number[], d: number) => {
    let hits = 0, before = 0;
    for (let i = 0; i < list.length; i++) {
      if (labels[from + i] === d) hits++;
      if (clean.labels.get(list[i]) === d) before++;
    }
    return Math.max(0, hits - before) / list.length;
  };
  await clean.ensure();
  // Every class with a destination stamped and predicted in one pass (hundreds of one-image classes
  // under the many-class plan, in calls of its bounded size), not one call per class.
  const moving = held.map((list, c) => (destination(c) === null ? [] : list));
  const ids = moving.flat();
  const labels = ids.length ? (await predict(ctx.model.onnx, stampTrigger(trigger, data, ids), ctx.runtime, { signal: ctx.signal, ...(bounded ? { batchSize: bounded.maxBatch } : {}) })).labels : new Int32Array(0);
  let row = 0;
  return moving.map((list, c) => {
    const from = row;
    row += list.length;
    return list.length === 0 ? NaN : landed(labels, from, list, destination(c)!);
  });
}

/** The unstamped predictions of the held-out images, made once, when a screen first needs them. */
interface CleanHeldOut {
  labels: Map<number, number>;
  ensure(): Promise<void>;
}

function cleanHeldOut(ctx: AnalysisContext, data: Dataset, held: number[][], maxBatch: number | undefined): CleanHeldOut {
  const labels = new Map<number, number>();
  let done: Promise<void> | undefined;
  return {
    labels,
    ensure: () =>
      (done ??= (async () => {
        const ids = held.flat();
        const predicted = (await predict(ctx.model.onnx, subset(data, ids), ctx.runtime, { signal: ctx.signal, ...(maxBatch ? { batchSize: maxBatch } : {}) })).labels;
        ids.forEach((id, i) => labels.set(id, predicted[i]));
      })()),
  };
}

function triggerOf(sc: MappingScreen, K: number): ReversedTrigger {
  const i = sc.indices.indexOf(sc.best);
  const task = sc.tasks[i];
  const target = sc.family === 'targets' ? sc.best : -1;
  const sources = Array.from({ length: K }, (_, c) => c).filter((c) => mappedClass(sc.family, sc.best, c, K) !== null);
  return task.objective.toTrigger(target, sources, task.bestParams ?? task.objective.params);
}

function attackTypeOf(d: ScreenDecision): AttackType | null {
  if (!d.flagged) return null;
  if (d.screen.family === 'shifts') return 'all-to-all';
  return d.pairs.length >= Math.max(2, Math.ceil(d.movable / 2)) ? 'all-to-one' : 'other';
}

export const pairsAnalysis: Analysis = {
  id: 'pairs',
  title: 'Trigger reversal',
  needs: 'labelled',
  detector: true,
  runsByDefault: true,
  options: { ...PAIRS_OPTIONS, ...PAIR_SCAN_OPTIONS },
  async run(ctx): Promise<AnalysisOutput> {
    const data = ctx.data!;
    const o = pairsOptions(ctx.options);
    const K = await classCount(ctx, data);
    const many = K > o.manyClasses;
    const all = imagesByClass(data, K, o.imagesPerClass + o.heldOutPerClass, ctx.seed);
    // The many-class plan confirms on other classes' images, so one image of every class is enough.
    const shortfall = dataShortfall(all.map((l) => l.length), many ? 1 : o.minImagesPerClass);
    if (shortfall) throw new BackdoorLensError('bad-data', shortfall, { file: data.source });
    let images: number[][], held: number[][];
    if (many) ({ images, held } = splitClassesInHalf(all, o, ctx.seed));
    else {
      // With few images a class gives what it has to the screens and keeps a third for confirmation.
      const split = all.map((l) => Math.min(o.imagesPerClass, l.length - Math.max(1, Math.floor(l.length / 3))));
      images = all.map((l, c) => l.slice(0, split[c]));
      held = all.map((l, c) => l.slice(split[c]));
    }
    const geometry = geometryOf(data);
    const gradient = await inputGradient(ctx.runtime, ctx.model.onnx);
    const notes: string[] = [];
    const screenShare = o.classPairs ? 0.5 : 0.9;
    const screenOptions = many ? { ...o, maxBatch: boundedBatch(o.maxBatch, geometry) } : o;
    const plan = many
      ? await planManyClasses(ctx.model.onnx, ctx.runtime, data, images, K, geometry, gradient, o, screenOptions.maxBatch, ctx.seed, ctx.signal, (f, stage) => ctx.progress(0.1 * screenShare * f, stage))
      : undefined;
    const requests = [
      ...(o.objectives.length ? [{ family: 'targets' as const, kinds: o.objectives, ...(plan ? { only: [...plan.targets.kept, ...plan.targets.reference], reference: plan.targets.reference } : {}) }] : []),
      ...(o.shiftObjectives.length && K > 2 ? [{ family: 'shifts' as const, kinds: o.shiftObjectives, ...(plan ? { only: [...plan.shifts.kept, ...plan.shifts.reference], reference: plan.shifts.reference } : {}) }] : []),
    ];
    const offset = plan ? 0.1 * screenShare : 0;
    const { screens, sampleGradients: screenGradients } = await runScreens(requests, images, data, geometry, gradient, screenOptions, ctx.seed, ctx.signal, (f, spent, budget) =>
      ctx.progress(
        offset + (screenShare - offset) * f,
        plan
          ? `trigger reversal step ${spent}/${budget} (${plan.targets.kept.length}+${plan.targets.reference.length} of ${K} targets${requests.length > 1 ? `, ${plan.shifts.kept.length}+${plan.shifts.reference.length} of ${K - 1} class shifts` : ''}, ${requests.flatMap((r) => r.kinds).length} screens)`
          : `trigger reversal step ${spent}/${budget} (${K} targets${requests.length > 1 ? `, ${K - 1} class shifts` : ''}, ${requests.flatMap((r) => r.kinds).length} screens)`,
      ),
    );
    let sampleGradients = screenGradients + (plan?.pre.sampleGradients ?? 0);
    if (plan) notes.push(...planNotes(plan, K, o, images, held));
    notes.push(`${screens.length} screens (${screens.map((s) => `${s.family}:${s.kind}`).join(', ')}), ${screens.reduce((n, s) => n + s.tasks.length, 0)} triggers of ≤ ${o.maxSteps} steps × ${o.batchSize} images, ${images.reduce((n, l) => n + l.length, 0)} images reversed on and ${held.reduce((n, l) => n + l.length, 0)} held out (${sampleGradients} image gradients)`);

    // Every mapping's trigger size, smallest first (at most 12): what a miss or a natural trigger is read from.
    for (const sc of screens) notes.push(`${sc.family}:${sc.kind} sizes, smallest first: ${screenSizesText(sc)}`);

    const decisions: ScreenDecision[] = [];
    const clean = cleanHeldOut(ctx, data, held, plan ? screenOptions.maxBatch : undefined);
    const family = networkFamily(ctx.model.onnx);
    for (const [i, sc] of screens.entries()) {
      ctx.progress(screenShare + ((1 - screenShare) * 0.5 * i) / screens.length, 'confirming flagged triggers on held-out images');
      const key = `${sc.family}:${sc.kind}` as ScreenKey;
      const calibrated = screenThreshold(key, family);
      const threshold = o.threshold ?? calibrated.value;
      const thresholdSource = o.threshold !== undefined ? `--option pairs.threshold (calibrated: ${calibrated.value.toFixed(2)})` : `${calibrated.source}${plan ? '; calibrated at K = 10 over all targets, not for this many classes' : ''}`;
      const movable = held.filter((l, c) => l.length > 0 && mappedClass(sc.family, sc.best, c, K) !== null).length;
      const decision: ScreenDecision = { screen: sc, key, threshold, thresholdSource, flagged: false, pairs: [], movable };
      if (sc.ratio > threshold && sc.succeeded[sc.indices.indexOf(sc.best)]) {
        const trigger = triggerOf(sc, K);
        const movedShare = await shareMoved(ctx, data, trigger, held, (c) => mappedClass(sc.family, sc.best, c, K), clean, plan ? { maxBatch: screenOptions.maxBatch } : undefined);
        const pairs = movedShare.flatMap((share, c) => (share >= o.moved ? [{ source: c, target: mappedClass(sc.family, sc.best, c, K)!, share }] : []));
        const enough = sc.family === 'targets' ? pairs.length >= 1 : pairs.length >= 2;
        Object.assign(decision, { trigger, movedShare, pairs, flagged: enough });
        if (!enough) notes.push(`${key}: R ${sc.ratio.toFixed(2)} > ${threshold.toFixed(2)}, but its trigger moves no held-out class (≥ ${Math.round(100 * o.moved)}%): not counted`);
      }
      decisions.push(decision);
    }

    const flagged = decisions.filter((d) => d.flagged);
    // Each flagged mapping once: a target found by patch and perturbation alike is one detection, kept from its strongest screen.
    const byMapping = new Map<string, ScreenDecision>();
    for (const d of [...flagged].sort((a, b) => b.screen.ratio / b.threshold - a.screen.ratio / a.threshold)) {
      const id = `${d.screen.family}:${d.screen.best}`;
      if (!byMapping.has(id)) byMapping.set(id, d);
    }
    const detections = [...byMapping.values()];

    let extra: Awaited<ReturnType<typeof scanClassPairs>> | undefined;
    if (o.classPairs) {
      extra = await scanClassPairs(ctx, data, K, gradient, geometry, pairScanOptions(ctx.options), (f, text) => ctx.progress(0.5 + 0.45 * f, text));
      sampleGradients += extra.gradientEvaluations ?? 0;
      notes.push(...(extra.notes ?? []));
    }

    const detectedPairs = dedupe([...detections.flatMap((d) => d.pairs), ...(extra?.pairs ?? []).filter((p) => p.flagged)]);
    const targets = [...new Set(detectedPairs.map((p) => p.target))].sort((a, b) => a - b);
    const attackType: AttackType | null = detections.length === 0 ? (extra?.attackType ?? null) : detections.length === 1 && !extra?.backdoored ? attackTypeOf(detections[0]) : detections.every((d) => d.screen.family === 'targets') && targets.length === 1 ? 'all-to-one' : 'other';

    const findings: Finding[] = [...detections.map((d) => findingOf(d, K, o)), ...(extra?.findings ?? [])];
    // Fixes get the trigger of every flagged screen, not one per mapping: a Blended zoo model is
    // flagged by the patch and the perturbation screens alike, and a fix fitted to and graded on one
    // of them says nothing about the other.
    const triggers: ReversedTrigger[] = [
      ...flagged.flatMap((d) =>
        d.screen.family === 'targets'
          ? [{ ...d.trigger!, sources: d.pairs.map((p) => p.source), flaggedBelowSize: d.screen.median / d.threshold }]
          : d.pairs.map((p) => ({ ...d.trigger!, target: p.target, sources: [p.source] })),
      ),
      ...(extra?.triggers ?? []),
    ];
    const artifacts: ArtifactImage[] = detections.flatMap((d) => {
      const example = held[d.pairs[0].source][0] ?? images[d.pairs[0].source][0];
      const naming = d.screen.family === 'targets' ? { stem: `target-${d.screen.best}-${d.screen.kind}`, label: d.screen.best } : { stem: `shift-${d.screen.best}-${d.screen.kind}`, pair: { source: d.pairs[0].source, target: d.pairs[0].target } };
      return triggerArtifacts(d.trigger!, data, example, naming);
    });
    artifacts.push(...(extra?.artifacts ?? []));

    const labels: LabelResult[] = [
      ...(plan ? [...plan.pre.targetPull].map((pull, t) => ({ label: t, statistic: pull, anomalyIndex: plan!.pre.targetAnomaly[t], flagged: false, method: 'pairs:prescreen' })) : []),
      ...screens
      .filter((s) => s.family === 'targets')
      .flatMap((s) => s.indices.map((t, i) => ({ label: t, l1: s.sizes[i], anomalyIndex: Math.min(...s.sizes) > 0 ? s.median / s.sizes[i] : 0, flagged: detections.some((d) => d.screen === s && d.screen.best === t), method: `pairs:targets:${s.kind}` }))),
    ];
    const pairs: PairResult[] = [
      ...detections.flatMap((d) => d.pairs.map((p) => ({ source: p.source, target: p.target, statistic: p.share, anomalyIndex: d.screen.ratio, flagged: true, method: `pairs:${d.key}` }))),
      ...(extra?.pairs ?? []),
    ];
    const evidence: VerdictEvidence[] = [...decisions.map((d) => evidenceOf(d, K)), ...(extra?.evidence ?? [])];
    if (detections.length) notes.push(`detected: ${detections.map((d) => `${d.key} ${mappingText(d.screen, K)} (R ${d.screen.ratio.toFixed(2)} > ${d.threshold.toFixed(2)}; held-out classes moved: ${movedText(d.pairs, plan ? 8 : Infinity)})`).join('; ')}`);
    return {
      findings,
      labels,
      pairs,
      targets,
      attackType: targets.length ? attackType : null,
      backdoored: detections.length > 0 || !!extra?.backdoored,
      evidence,
      threshold: Math.min(...decisions.map((d) => d.threshold)),
      artifacts,
      gradientEvaluations: sampleGradients,
      notes,
      state: { triggers },
    };
  },
};

function mappingText(sc: MappingScreen, K: number): string {
  if (sc.family === 'targets') return `→ class ${sc.best}`;
  return sc.best === 1 ? 'c → c+1' : `c → c+${sc.best} (mod ${K})`;
}

function findingOf(d: ScreenDecision, K: number, o: PairsOptions): Finding {
  const sc = d.screen;
  const size = sc.sizes[sc.indices.indexOf(sc.best)];
  const moved = `${d.pairs.length} of ${d.movable}${sc.reference ? ' held-out' : ''} classes`;
  const message =
    sc.family === 'targets'
      ? `Backdoor to class ${sc.best}: a ${kindText(sc.kind)} trigger (${sizeText(sc.kind, size)}) moves ${moved}; ${sc.ratio.toFixed(1)}× smaller than typical (threshold ${d.threshold.toFixed(2)})`
      : `All-to-all backdoor (${mappingText(sc, K)}): one ${kindText(sc.kind)} trigger moves ${moved} to their next class; R ${sc.ratio.toFixed(1)} > ${d.threshold.toFixed(2)}`;
  return {
    severity: 'error',
    code: sc.family === 'targets' ? 'BL004' : 'BL005',
    method: 'pairs',
    message: `${message}.\nHeld out: ${movedText(d.pairs, sc.reference ? 8 : Infinity)} (≥ ${Math.round(100 * o.moved)}% counts).`,
    location: sc.family === 'targets' ? { label: sc.best } : { pair: { source: d.pairs[0].source, target: d.pairs[0].target } },
  };
}

function evidenceOf(d: ScreenDecision, K: number): VerdictEvidence {
  const sc = d.screen;
  const what = sc.reference
    ? `${sc.indices.length} of the ${sc.family === 'targets' ? `${K} target classes` : `${K - 1} class shifts c → c+k`} (pre-screen candidates; median over ${sc.reference.length} random ones)`
    : sc.family === 'targets' ? `the ${sc.indices.length} target classes` : `the ${sc.indices.length} class shifts c → c+k`;
  return {
    method: `pairs:${d.key}`,
    statistic: `median / smallest ${kindText(sc.kind)} trigger size over ${what}`,
    value: sc.ratio,
    threshold: d.threshold,
    direction: 'above',
    thresholdSource: d.thresholdSource,
    flagged: d.flagged,
    targets: d.flagged ? [...new Set(d.pairs.map((p) => p.target))].sort((a, b) => a - b) : [],
    attackType: attackTypeOf(d),
    summary: `pairs:${d.key}: smallest ${mappingText(sc, K)}, R ${sc.ratio.toFixed(2)} ${sc.ratio > d.threshold ? '>' : '≤'} ${d.threshold.toFixed(2)}${d.flagged ? `; moves ${d.pairs.length} held-out classes` : sc.ratio > d.threshold ? '; not confirmed on held-out images' : ''}`,
  };
}

/** "8 3.10, 1 4.02, …": each mapping and its trigger size ("*" where no trigger of it succeeded), the 12 smallest. */
function screenSizesText(sc: MappingScreen): string {
  const order = sc.indices.map((m, i) => ({ m, size: sc.sizes[i], ok: sc.succeeded[i] })).sort((a, b) => a.size - b.size);
  const text = order.slice(0, 12).map((e) => `${sc.family === 'targets' ? e.m : `+${e.m}`} ${e.size.toFixed(2)}${e.ok ? '' : '*'}`).join(', ');
  return `${text}${order.length > 12 ? `, … (${order.length - 12} more)` : ''}; median ${sc.median.toFixed(2)}`;
}

function dedupe<P extends { source: number; target: number }>(pairs: P[]): P[] {
  const seen = new Set<string>();
  return pairs.filter((p) => !seen.has(`${p.source},${p.target}`) && seen.add(`${p.source},${p.target}`));
}


/** "3→7 100%, 4→7 90%": every moved class, or the first `limit` and a count (hundreds at K = 1 000). */
function movedText(pairs: readonly { source: number; target: number; share: number }[], limit: number): string {
  const text = pairs.slice(0, limit).map((p) => `${p.source}→${p.target} ${Math.round(100 * p.share)}%`).join(', ');
  return pairs.length > limit ? `${text}, … (${pairs.length} in all)` : text;
}
