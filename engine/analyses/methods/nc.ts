/**
 * Neural Cleanse (Wang et al. 2019) per target label: the smallest mask + pattern that moves clean
 * images of every other class to the label; MAD over the mask norms flags labels whose trigger is
 * anomalously small (below the median, anomaly index > 2).
 */
import type { Finding, LabelResult, VerdictEvidence } from '../../report/types';
import { defaultSchedulerOptions } from '../reversal/karm';
import { madOutliers } from '../stats/mad';
import { positiveOption } from '../positive-option';
import { classCount, imagesByClass } from '../reversal/class-images';
import { inputGradient } from '../reversal/gradient';
import { geometryOf, makeTask, runTasks } from '../reversal/run';
import { patchSchedule } from '../reversal/task';
import { triggerArtifacts } from '../reversal/trigger-artifacts';
import type { ReversedTrigger } from '../reversal/trigger';
import type { OptionSpecs } from '../../method-options';
import type { Analysis, AnalysisOutput } from '../types';

/** Neural Cleanse's options; the defaults are the paper's where it gives them. */
export const NC_OPTIONS = {
  threshold: { type: 'number', default: 2, doc: 'MAD anomaly index above which a label is flagged' },
  imagesPerClass: { type: 'integer', default: 100, doc: 'clean images per class the triggers are reversed on' },
  batchSize: { type: 'integer', default: 32, doc: 'images per optimisation step' },
  maxSteps: { type: 'integer', default: 300, doc: 'optimisation steps per label at most' },
  maxBatch: { type: 'integer', default: 512, doc: 'images per gradient call at most (bounds memory)' },
} as const satisfies OptionSpecs;

export const ncAnalysis: Analysis = {
  id: 'nc',
  title: 'Neural Cleanse',
  needs: 'labelled',
  detector: true,
  runsByDefault: false,
  options: NC_OPTIONS,
  async run(ctx): Promise<AnalysisOutput> {
    const data = ctx.data!;
    const threshold = positiveOption(ctx.options, 'nc', 'threshold', NC_OPTIONS.threshold.default);
    const schedule = { ...patchSchedule, batchSize: Math.floor(positiveOption(ctx.options, 'nc', 'batchSize', NC_OPTIONS.batchSize.default)), maxSteps: Math.floor(positiveOption(ctx.options, 'nc', 'maxSteps', NC_OPTIONS.maxSteps.default)) };
    const K = await classCount(ctx, data);
    const perClass = Math.floor(positiveOption(ctx.options, 'nc', 'imagesPerClass', NC_OPTIONS.imagesPerClass.default));
    const byClass = imagesByClass(data, K, perClass, ctx.seed);
    const geometry = geometryOf(data);
    const gradient = await inputGradient(ctx.runtime, ctx.model.onnx);
    const tasks = Array.from({ length: K }, (_, t) => {
      const sources = byClass.flatMap((list, c) => (c === t ? [] : list));
      return makeTask(10_000 + t, 'patch', t, sources, geometry, schedule, ctx.seed);
    });
    const stats = await runTasks(tasks, { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: K }, data, gradient, {
      maxBatch: Math.floor(positiveOption(ctx.options, 'nc', 'maxBatch', NC_OPTIONS.maxBatch.default)),
      signal: ctx.signal,
      onRound: (done, total, fraction) => ctx.progress(fraction, `reversing a trigger for each of ${total} labels (${done} settled)`),
    });
    const r = madOutliers(tasks.map((t) => t.size), threshold, 'below');
    const labels: (LabelResult & { l1: number })[] = tasks.map((t, i) => ({ label: i, l1: t.size, anomalyIndex: r.anomalyIndex[i], flagged: r.flagged[i] && t.succeeded, method: 'nc' }));
    const flagged = labels.filter((l) => l.flagged);
    const findings: Finding[] = flagged.map((l) => ({
      severity: 'error',
      code: 'BL002',
      method: 'nc',
      message: `Label ${l.label} has an anomalously small reversed trigger: a patch of |m|₁ = ${l.l1.toFixed(1)} moves ≥99% of clean images of the other classes to it (median ${r.median.toFixed(1)}, anomaly index ${l.anomalyIndex.toFixed(1)} > ${threshold}). Target class ${l.label}.`,
      location: { label: l.label },
    }));
    const triggers: ReversedTrigger[] = flagged.map((l) => tasks[l.label].objective.toTrigger(l.label, byClass.flatMap((_, c) => (c === l.label ? [] : [c])), tasks[l.label].bestParams));
    const artifacts = flagged.flatMap((l, i) => {
      const example = byClass.find((list, c) => c !== l.label && list.length > 0)![0];
      return triggerArtifacts(triggers[i], data, example, { stem: `label-${l.label}`, label: l.label });
    });
    const steps = tasks.reduce((s, t) => s + t.step, 0);
    const below = labels.filter((l) => l.l1 < r.median);
    const top = below.reduce<(LabelResult & { l1: number }) | undefined>((a, b) => (!a || b.anomalyIndex > a.anomalyIndex ? b : a), undefined);
    const evidence: VerdictEvidence = {
      method: 'nc',
      statistic: 'anomaly index of |m|₁ over the target labels (smaller than the median)',
      value: top?.anomalyIndex ?? 0,
      threshold,
      direction: 'above',
      thresholdSource: `Neural Cleanse's default (${threshold}); --option nc.threshold`,
      flagged: flagged.length > 0,
      targets: flagged.map((l) => l.label),
      attackType: flagged.length ? (flagged.length === 1 ? 'all-to-one' : 'other') : null,
      summary: top ? `nc: label ${top.label} |m|₁ ${top.l1.toFixed(1)} (median ${r.median.toFixed(1)}), anomaly index ${top.anomalyIndex.toFixed(1)} ${flagged.length ? '>' : '≤'} ${threshold}` : 'nc: no label below the median',
    };
    return {
      evidence: [evidence],
      threshold,
      findings,
      labels,
      targets: flagged.map((l) => l.label),
      attackType: flagged.length ? (flagged.length === 1 ? 'all-to-one' : 'other') : null,
      backdoored: flagged.length > 0,
      artifacts,
      gradientEvaluations: stats.sampleGradients,
      notes: [`${K} labels, ${steps} steps of ${schedule.batchSize} images (${stats.sampleGradients} image gradients in ${stats.calls} batched calls)`],
      state: { triggers },
    };
  },
};
