/**
 * Unlearning with the reversed triggers (Neural Cleanse's mitigation, Wang et al. 2019, §VI-C):
 * fine-tune the weights on the clean fit images, a share of them stamped with a reversed trigger
 * and labelled with their true class, so that the trigger stops mapping to its target. Works
 * with any trigger kind the detectors hand over that can be stamped on images.
 *
 * Gradients come from the engine's own gradient graph (GradientSession with every weight and
 * bias as `wrt`); BatchNorm keeps its running statistics (eval mode), as fine-tuning on a few
 * hundred images must not re-estimate them. Adam, a fixed number of epochs or a time limit,
 * whichever ends first; after each epoch the weights are scored on a validation slice of the
 * fit images (never the held-out ones the fix is graded on) and the best epoch is kept: the
 * lowest trigger success among those within the accuracy budget.
 */
import type { OptionSpecs } from '../method-options';
import { GradientSession } from '../autodiff';
import { numberOption } from '../analyses/neurons/options';
import { SeededRandom } from '../analyses/stats/random';
import { stampTrigger, type ReversedTrigger } from '../analyses/reversal/trigger';
import { subset } from '../data/types';
import { imageInputOf, predict } from '../evaluate';
import type { Tensor } from '../tensor';
import { Adam, WeightScorer, copyWeights, replacesBest, softLabels, stampableTriggers, trainableWeights, validationSplit, weightFeeds, withWeights, withinBudget } from './fine-tune';
import { concatSamples } from './measure';
import { REESTIMABLE, inputGradientWithWeights, reestimate } from './reestimate';
import { sourceIndices, withFlagBoundCopies } from './triggers';
import type { Fix, FixRun } from './types';

export interface UnlearnOptions {
  epochs: number;
  /** Wall-clock limit of the training loop, seconds. */
  maxSeconds: number;
  lr: number;
  batchSize: number;
  /** Share of each batch stamped with a reversed trigger (Neural Cleanse: 20%). */
  stampShare: number;
  /** Share of the fit images kept aside to choose the epoch. */
  validationShare: number;
  /** Steps of each re-estimation against the current weights (0: only the handed triggers). */
  reversalSteps: number;
  /** Images per class a re-estimation reverses on. */
  reversalImagesPerClass: number;
  /**
   * Share of images a re-estimated trigger must move: below the detectors' 99%, so that a backdoor
   * half unlearned (its trigger moving some images, not all) is still found and unlearned.
   */
  reversalSuccess: number;
  /** Re-estimate every kind that has an objective, not only the kinds the detectors handed over. */
  reestimateAll: boolean;
  /**
   * Weight of the original model's probabilities on the clean image in each training label (the
   * rest is the true class): distillation keeps what the model knew of the clean images, which a
   * few hundred hard labels do not; a stamped image is taught the original model's answer on its
   * clean version. 0 is Neural Cleanse's hard labels.
   */
  distil: number;
  /** Also train on each trigger grown to the detector's flag bound (the size the fix is graded at). */
  grown: boolean;
}

export const UNLEARN_DEFAULTS: UnlearnOptions = { epochs: 5, maxSeconds: 110, lr: 1e-4, batchSize: 64, stampShare: 0.2, validationShare: 0.15, reversalSteps: 200, reversalImagesPerClass: 20, reversalSuccess: 0.5, reestimateAll: true, distil: 0, grown: false };

export function unlearnOptions(o: Record<string, unknown>): UnlearnOptions {
  type NumberKey = Exclude<keyof UnlearnOptions, 'reestimateAll' | 'grown'>;
  const n = (key: NumberKey, range: Parameters<typeof numberOption>[4]) => numberOption(o, 'unlearn', key, UNLEARN_DEFAULTS[key], range);
  return {
    epochs: n('epochs', { min: 1, integer: true }),
    maxSeconds: n('maxSeconds', { min: 1 }),
    lr: n('lr', { min: 0 }),
    batchSize: n('batchSize', { min: 2, integer: true }),
    stampShare: n('stampShare', { min: 0, max: 1 }),
    validationShare: n('validationShare', { min: 0, max: 0.9 }),
    reversalSteps: n('reversalSteps', { min: 0, integer: true }),
    reversalImagesPerClass: n('reversalImagesPerClass', { min: 1, integer: true }),
    reversalSuccess: n('reversalSuccess', { min: 0.01, max: 1 }),
    distil: n('distil', { min: 0, max: 1 }),
    reestimateAll: String(o.reestimateAll ?? 'true') !== 'false',
    grown: String(o.grown ?? String(UNLEARN_DEFAULTS.grown)) === 'true',
  };
}

interface EpochScore {
  epoch: number;
  accuracy: number;
  success: number;
}

/** Images of every class but `target`, at most `perClass` of each, in a seeded order. */
function imagesAvoiding(labels: Int32Array, target: number, perClass: number, seed: number): number[] {
  const byClass = new Map<number, number[]>();
  labels.forEach((c, i) => {
    if (c !== target) byClass.set(c, [...(byClass.get(c) ?? []), i]);
  });
  return [...byClass.entries()].sort((a, b) => a[0] - b[0]).flatMap(([c, list]) => new SeededRandom(SeededRandom.derive(seed, 0x554e, c)).shuffle(list).slice(0, perClass));
}

/** Unlearning's options (defaults UNLEARN_DEFAULTS), one line each. */
export const UNLEARN_OPTIONS: OptionSpecs = {
  epochs: { type: 'integer', default: UNLEARN_DEFAULTS.epochs, doc: 'fine-tuning epochs at most' },
  maxSeconds: { type: 'number', default: UNLEARN_DEFAULTS.maxSeconds, doc: 'wall-clock limit, seconds (the trigger re-estimation included)' },
  lr: { type: 'number', default: UNLEARN_DEFAULTS.lr, doc: 'Adam learning rate' },
  batchSize: { type: 'integer', default: UNLEARN_DEFAULTS.batchSize, doc: 'images per training step' },
  stampShare: { type: 'number', default: UNLEARN_DEFAULTS.stampShare, doc: 'share of each batch stamped with a reversed trigger' },
  validationShare: { type: 'number', default: UNLEARN_DEFAULTS.validationShare, doc: 'share of the fit images kept aside to choose the epoch' },
  reversalSteps: { type: 'integer', default: UNLEARN_DEFAULTS.reversalSteps, doc: 'steps of each re-estimation against the current weights (0: none)' },
  reversalImagesPerClass: { type: 'integer', default: UNLEARN_DEFAULTS.reversalImagesPerClass, doc: 'images per class a re-estimation reverses on' },
  reversalSuccess: { type: 'number', default: UNLEARN_DEFAULTS.reversalSuccess, doc: 'share of images a re-estimated trigger must move' },
  reestimateAll: { type: 'boolean', default: UNLEARN_DEFAULTS.reestimateAll, doc: 're-estimate every kind with an objective, not only those handed over' },
  grown: { type: 'boolean', default: UNLEARN_DEFAULTS.grown, doc: "also train on each trigger grown to the detector's flag bound" },
  distil: { type: 'number', default: UNLEARN_DEFAULTS.distil, doc: "weight of the original model's clean-image probabilities in each label (0: hard labels)" },
};

export const unlearnFix: Fix = {
  id: 'unlearn',
  title: 'Unlearn the reversed triggers (fine-tune on stamped images with their true labels)',
  needs: 'labelled',
  cost: 120,
  needsTrigger: true,
  options: UNLEARN_OPTIONS,
  async run(ctx): Promise<FixRun> {
    const o = unlearnOptions(ctx.options);
    const data = ctx.data!;
    const notes: string[] = [`triggers: ${ctx.triggerSource}`];
    const handed = stampableTriggers(o.grown ? withFlagBoundCopies(ctx.triggers) : ctx.triggers, data, notes);
    if (handed.length === 0) {
      return { method: 'unlearn', pruned: [], notes, nothing: ctx.triggers.length ? 'no reversed trigger can be stamped on input images, and unlearning trains on stamped images' : `no backdoor trigger was found (${ctx.triggerSource}), and unlearning needs one to unlearn` };
    }
    const model = ctx.model.onnx;
    const { names, params, dims } = trainableWeights(model);
    const input = imageInputOf(model).name;
    const t0 = Date.now();
    const overTime = () => Date.now() - t0 > o.maxSeconds * 1000;

    // A validation slice of the fit images chooses the epoch; the rest is trained on.
    const { train, val } = validationSplit(data, o.validationShare, ctx.seed ^ 0x5641);
    const labels = train.labels!;

    // Re-estimated against the current weights: what still sends images to each target.
    const targets = [...new Set(handed.map((t) => t.target))].sort((a, b) => a - b);
    const kindsOf = (t: number) => (o.reestimateAll ? [...REESTIMABLE] : [...new Set(handed.filter((h) => h.target === t).map((h) => h.kind))].filter((k) => REESTIMABLE.includes(k)));
    const current = await inputGradientWithWeights(ctx.runtime, model, params, dims);
    const fresh = new Map<string, ReversedTrigger>();
    // The re-estimation counts against the time limit like the training does: each refresh may use
    // a share of what is left, and one cut short keeps the triggers it had (the rest stay as before).
    const remainingMs = () => o.maxSeconds * 1000 - (Date.now() - t0);
    const refresh = async (round: number, share: number): Promise<string> => {
      const found: string[] = [];
      const timeout = AbortSignal.timeout(Math.max(1, Math.floor(share * remainingMs())));
      const signal = AbortSignal.any([ctx.signal, timeout]);
      for (const target of targets) {
        for (const kind of kindsOf(target)) {
          if (timeout.aborted) {
            found.push(`${kind} → ${target} not re-estimated (time limit)`);
            continue;
          }
          const images = imagesAvoiding(labels, target, o.reversalImagesPerClass, ctx.seed + round);
          let r: Awaited<ReturnType<typeof reestimate>>;
          try {
            r = await reestimate(kind, target, [], images, train, current, { seed: ctx.seed + round, id: 40_000 + target, maxSteps: o.reversalSteps, success: o.reversalSuccess, signal });
          } catch (e) {
            if (ctx.signal.aborted || !timeout.aborted) throw e;
            found.push(`${kind} → ${target} cut short by the time limit`);
            continue;
          }
          if (r.trigger) {
            fresh.set(`${target}:${kind}`, r.trigger);
            found.push(`${kind} → ${target} size ${r.size.toFixed(2)}`);
          } else {
            fresh.delete(`${target}:${kind}`);
            found.push(`${kind} → ${target} none within ${r.steps} steps`);
          }
        }
      }
      return found.join(', ');
    };
    const refreshed: string[] = [];
    // At most a third of the time before training, so the training itself gets the rest.
    if (o.reversalSteps > 0) refreshed.push(`before: ${await refresh(0, 1 / 3)}`);
    // Validation measures the handed triggers and the first re-estimates, the same set every epoch.
    const measured = [...handed, ...fresh.values()];
    const valLabels = val.labels!;
    const valStamped = measured.map((t) => ({ t, idx: sourceIndices(valLabels, t) })).filter((s) => s.idx.length > 0);
    const valSet = concatSamples([val, ...valStamped.map((s) => stampTrigger(s.t, val, s.idx))]);
    const scorer = await WeightScorer.create(ctx.runtime, model, names);
    const score = async (epoch: number): Promise<EpochScore> => {
      const pred = await scorer.predictions(valSet, params, dims, ctx.signal);
      let ok = 0;
      for (let i = 0; i < val.n; i++) if (pred[i] === valLabels[i]) ok++;
      let hits = 0, n = 0, at = val.n;
      for (const s of valStamped) {
        for (let k = 0; k < s.idx.length; k++) if (pred[at + k] === s.t.target) hits++;
        n += s.idx.length;
        at += s.idx.length;
      }
      return { epoch, accuracy: ok / val.n, success: n ? hits / n : 0 };
    };

    const session = await GradientSession.create(ctx.runtime, model, { loss: { kind: o.distil > 0 ? 'soft-cross-entropy' : 'cross-entropy' }, wrt: names });
    const teacher = o.distil > 0 ? softLabels(await predict(model, train, ctx.runtime, { signal: ctx.signal }), labels, o.distil) : undefined;
    const classes = teacher ? teacher.length / train.n : 0;
    const adam = new Adam(o.lr);
    const random = new SeededRandom(SeededRandom.derive(ctx.seed, 0x554e4c));
    const start = await score(0);
    let best: { score: EpochScore; params: Map<string, Float32Array> } = { score: start, params: copyWeights(params) };
    const scores: EpochScore[] = [start];
    let stopped = `${o.epochs} epochs`;
    let steps = 0;
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const pool = [...handed, ...fresh.values()];
      // Per training image, the triggers it can carry (any trigger not aimed at its own class).
      const eligible = Array.from({ length: train.n }, (_, i) => pool.filter((t) => t.target !== labels[i]));
      const order = random.shuffle(Array.from({ length: train.n }, (_, i) => i));
      for (let b = 0; b + 1 < order.length && !overTime(); b += o.batchSize) {
        ctx.signal.throwIfAborted();
        const idx = order.slice(b, b + o.batchSize);
        const batch = subset(train, idx);
        const per = batch.x.length / batch.n;
        // Stamp a share of the batch, each image with one of its eligible triggers, keeping its true label.
        for (let k = 0; k < idx.length; k++) {
          const choices = eligible[idx[k]];
          if (choices.length === 0 || random.next() >= o.stampShare) continue;
          batch.x.set(stampTrigger(choices[random.int(choices.length)], train, [idx[k]]).x, k * per);
        }
        const feeds: Record<string, Tensor> = { [input]: { dtype: 'float32', dims: batch.dims, data: batch.x }, ...weightFeeds(params, dims) };
        const soft = teacher ? new Float32Array(idx.length * classes) : undefined;
        if (soft) idx.forEach((i, k) => soft.set(teacher!.subarray(i * classes, (i + 1) * classes), k * classes));
        const r = await session.run({ inputs: feeds, labels: batch.labels!, ...(soft ? { softLabels: soft } : {}) });
        adam.step(params, r.grads);
        steps++;
      }
      const s = await score(epoch);
      scores.push(s);
      ctx.progress(Math.min(0.95, Math.max(epoch / o.epochs, (Date.now() - t0) / (1000 * o.maxSeconds))), `epoch ${epoch}: trigger success ${(100 * s.success).toFixed(1)}%, accuracy ${(100 * s.accuracy).toFixed(1)}% on the validation slice`);
      const within = withinBudget(s, start, ctx.budget);
      if (replacesBest(s, best.score, start, ctx.budget)) best = { score: s, params: copyWeights(params) };
      if (overTime()) {
        stopped = `the time limit of ${o.maxSeconds} s in epoch ${epoch}`;
        break;
      }
      if (o.reversalSteps > 0 && epoch < o.epochs) {
        refreshed.push(`after epoch ${epoch}: ${await refresh(epoch, 1 / 2)}`);
        // Nothing left that the reversal can find, and the measured triggers fail: done.
        if (fresh.size === 0 && s.success <= ctx.goal / 2 && within) {
          stopped = `epoch ${epoch}: no trigger could be re-estimated any more and the measured ones fail`;
          break;
        }
      }
    }
    const fixed = withWeights(model, best.params, dims, `${ctx.model.path} (unlearned)`);
    const pctv = (x: number) => `${(100 * x).toFixed(1)}%`;
    notes.push(
      `fine-tuned ${names.length} weight tensors with Adam lr ${o.lr}, batch ${o.batchSize}, ${Math.round(100 * o.stampShare)}% of each batch stamped with a reversed trigger and labelled with ${o.distil > 0 ? `${o.distil} × the original model's probabilities on the clean image + ${1 - o.distil} × its true class` : 'its true class'}; BN running statistics kept`,
      `${steps} steps on ${train.n} fit images, stopped by ${stopped} (${((Date.now() - t0) / 1000).toFixed(0)} s); kept epoch ${best.score.epoch}`,
      ...(refreshed.length ? [`triggers re-estimated against the current weights (${o.reversalSteps} steps at most): ${refreshed.join('; ')}`] : []),
      `validation slice (${val.n} fit images, not trained on), ${measured.length} trigger(s): ${scores.map((s) => `epoch ${s.epoch} trigger ${pctv(s.success)} acc ${pctv(s.accuracy)}`).join('; ')}`,
    );
    return { method: 'unlearn', model: fixed, pruned: [], notes, details: { epochs: scores.length - 1, steps, keptEpoch: best.score.epoch, validation: scores } };
  },
};
