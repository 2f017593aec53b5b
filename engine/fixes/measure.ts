/**
 * How a fix measures itself: clean accuracy on held-out clean images, and the attack success of
 * every reversed trigger on held-out images of its source classes, before and after; plus the
 * true attack success rate when a triggered test set is given. One probe is built per held-out
 * set (clean images and every stamped copy in one batch set) and read once per model, so `auto`
 * reads the original model once and each candidate once.
 */
import type { ReversedTrigger } from '../analyses/reversal/trigger';
import type { DataKind } from '../analyses/types';
import { sampleSize, type Dataset } from '../data/types';
import { evaluate, predict } from '../evaluate';
import type { OnnxModel } from '../graph/model';
import type { Runtime } from '../runtime/session';
import type { ReversedAgain } from './reverse-again';
import { byTarget, sourceIndices, stampOrExplain, triggerLabel } from './triggers';

/** A triggered test set with the true trigger: labels are the true classes. */
export interface TriggeredSet {
  data: Dataset;
  /** All-to-one target, or all-to-all (c → c + 1 mod K). */
  target?: number;
  allToAll?: boolean;
}

export interface BeforeAfter {
  before: number;
  after: number;
}

export interface TriggerMeasure extends BeforeAfter {
  label: string;
  kind: string;
  target: number;
  sources: number[];
  /** Held-out images it was stamped on. */
  n: number;
}

export interface TargetMeasure extends BeforeAfter {
  target: number;
  /** Stamped held-out images over all of the target's triggers. */
  n: number;
}

/** One class's accuracy on the held-out images, before and after (a fix may buy its removal with one class). */
export interface ClassAccuracy extends BeforeAfter {
  label: number;
  n: number;
}

export interface FixMeasurement {
  /** Which images, in words (held-out part of --data, or a separate set). */
  heldOut: string;
  /** Clean accuracy on the held-out images (agreement with the original model's predictions when unlabelled). */
  accuracy: (BeforeAfter & { n: number; agreement: boolean; perClass: ClassAccuracy[]; paired?: PairedChange }) | null;
  triggers: TriggerMeasure[];
  /** Per target: every trigger of that target on its own source images, pooled. */
  targets: TargetMeasure[];
  /** Triggers that could not be stamped on input images, with the reason. */
  unstamped: { label: string; reason: string }[];
  /** ASR of the true trigger on the triggered set, when one was given. */
  trueAttack?: BeforeAfter & { n: number; source: string };
  /** The flagged triggers reversed again on the fixed model and measured on held-out images (reverse-again.ts). */
  reversedAgain?: ReversedAgain[];
  /** The ASR the outcome is judged by: the highest of the triggers' ASRs and the true ASR. */
  estimated: BeforeAfter | null;
}

/**
 * The same images before and after: how many the fix lost (right → wrong) and gained. The
 * accuracy change of a paired measurement is known far better than two separate accuracies
 * (McNemar): its spread comes from the images whose answer changed, not from all of them.
 */
export interface PairedChange {
  lost: number;
  gained: number;
  /** Half-width of the 95% interval of the accuracy loss (normal approximation of the paired difference). */
  margin: number;
}

/** Paired change of the answers on `idx`: correct before/after against `reference`. */
export function pairedChange(before: Int32Array, after: Int32Array, reference: Int32Array, idx: readonly number[]): PairedChange {
  let lost = 0, gained = 0;
  for (const i of idx) {
    const b = before[i] === reference[i], a = after[i] === reference[i];
    if (b && !a) lost++;
    else if (a && !b) gained++;
  }
  const n = idx.length;
  // Var of the mean of d_i ∈ {−1, 0, 1}: (Σd² − (Σd)²/n) / n, over n for the mean.
  const variance = n > 1 ? (lost + gained - (lost - gained) ** 2 / n) / (n - 1) : 0;
  return { lost, gained, margin: n > 0 ? 1.96 * Math.sqrt(Math.max(0, variance) / n) : 0 };
}

interface StampedPart {
  trigger: ReversedTrigger;
  start: number;
  count: number;
}

/** What one read of a model gives: predictions over the probe's images. */
export interface ProbeReading {
  predictions: Int32Array;
  triggered?: { asr: number; n: number };
}

export class FixProbe {
  private constructor(
    readonly heldOut: Dataset,
    readonly description: string,
    /** The class each held-out image is scored against (its label, or the original prediction). */
    readonly reference: Int32Array,
    readonly agreement: boolean,
    /** Held-out images that count for accuracy (a possibly poisoned set leaves the target classes out). */
    readonly cleanIdx: number[],
    private readonly combined: Dataset,
    private readonly parts: StampedPart[],
    readonly unstamped: { label: string; reason: string }[],
    readonly triggered?: TriggeredSet,
  ) {}

  /**
   * `reference`: the held-out labels, or (unlabelled data) the original model's predictions.
   * On a possibly poisoned set ('mixed') samples of a trigger's target class count for nothing.
   */
  static build(heldOut: Dataset, description: string, triggers: readonly ReversedTrigger[], reference: Int32Array, options: { dataKind?: DataKind; triggered?: TriggeredSet } = {}): FixProbe {
    const targets = new Set(triggers.map((t) => t.target));
    const all = Array.from({ length: heldOut.n }, (_, i) => i);
    const cleanIdx = options.dataKind === 'mixed' ? all.filter((i) => !targets.has(reference[i])) : all;
    const pieces: Dataset[] = [heldOut];
    const parts: StampedPart[] = [];
    const unstamped: { label: string; reason: string }[] = [];
    let at = heldOut.n;
    for (const trigger of triggers) {
      const idx = sourceIndices(reference, trigger);
      if (idx.length === 0) {
        unstamped.push({ label: triggerLabel(trigger), reason: `no held-out images of class${trigger.sources.length === 1 ? '' : 'es'} ${trigger.sources.join(', ') || 'other than the target'}` });
        continue;
      }
      const s = stampOrExplain(trigger, heldOut, idx);
      if (!s.ok) {
        unstamped.push({ label: triggerLabel(trigger), reason: s.reason });
        continue;
      }
      pieces.push(s.data);
      parts.push({ trigger, start: at, count: idx.length });
      at += idx.length;
    }
    return new FixProbe(heldOut, description, reference, !heldOut.labels, cleanIdx, concatSamples(pieces), parts, unstamped, options.triggered);
  }

  /** Triggers that could be stamped and measured. */
  get measuredTriggers(): ReversedTrigger[] {
    return this.parts.map((p) => p.trigger);
  }

  async read(model: OnnxModel, runtime: Runtime, options: { batchSize?: number; signal?: AbortSignal } = {}): Promise<ProbeReading> {
    const reading: ProbeReading = { predictions: this.combined.n ? (await predict(model, this.combined, runtime, options)).labels : new Int32Array(0) };
    if (this.triggered) {
      const r = await evaluate(model, this.triggered.data, runtime, { ...options, target: this.triggered.target, allToAll: this.triggered.allToAll });
      reading.triggered = { asr: r.asr ?? 0, n: r.asrN ?? 0 };
    }
    return reading;
  }

  /** What one reading shows: accuracy, each trigger's and each target's success, the true ASR. */
  rates(r: ProbeReading): ProbeRates {
    let ok = 0;
    const perClass = new Map<number, { n: number; ok: number }>();
    for (const i of this.cleanIdx) {
      const c = perClass.get(this.reference[i]) ?? { n: 0, ok: 0 };
      perClass.set(this.reference[i], c);
      c.n++;
      if (r.predictions[i] === this.reference[i]) (ok++, c.ok++);
    }
    const hits = this.parts.map((p) => {
      let h = 0;
      for (let i = p.start; i < p.start + p.count; i++) if (r.predictions[i] === p.trigger.target) h++;
      return h;
    });
    const triggers = this.parts.map((p, k) => ({ label: triggerLabel(p.trigger), kind: p.trigger.kind, target: p.trigger.target, sources: [...p.trigger.sources], n: p.count, rate: hits[k] / p.count }));
    const targets = [...byTarget(this.parts.map((p) => p.trigger)).keys()].map((target) => {
      const mine = this.parts.map((p, k) => ({ p, k })).filter(({ p }) => p.trigger.target === target);
      const n = mine.reduce((a, { p }) => a + p.count, 0);
      return { target, n, rate: mine.reduce((a, { k }) => a + hits[k], 0) / n };
    });
    const classes = [...perClass.entries()].sort((x, y) => x[0] - y[0]).map(([label, c]) => ({ label, n: c.n, rate: c.ok / c.n }));
    return { accuracy: this.cleanIdx.length ? ok / this.cleanIdx.length : null, n: this.cleanIdx.length, perClass: classes, triggers, targets, ...(r.triggered ? { trueAttack: r.triggered } : {}) };
  }

  /** Before and after, per trigger, per target, and the estimate the outcome is judged by. */
  compare(before: ProbeReading, after: ProbeReading): FixMeasurement {
    const b = this.rates(before), a = this.rates(after);
    const triggers: TriggerMeasure[] = a.triggers.map(({ rate, ...t }, k) => ({ ...t, before: b.triggers[k].rate, after: rate }));
    const targets: TargetMeasure[] = a.targets.map(({ rate, ...t }, k) => ({ ...t, before: b.targets[k].rate, after: rate }));
    const trueAttack = b.trueAttack && a.trueAttack ? { before: b.trueAttack.asr, after: a.trueAttack.asr, n: a.trueAttack.n, source: this.triggered!.data.source } : undefined;
    // Each trigger on its own, not pooled per target: one that still works is not averaged away by those that stopped.
    const candidates: BeforeAfter[] = [...triggers, ...(trueAttack ? [trueAttack] : [])];
    // The worst case after the fix, beside the same measure before it.
    const worst = candidates.reduce<BeforeAfter | null>((w, c) => (!w || c.after > w.after ? c : w), null);
    return {
      heldOut: this.description,
      accuracy:
        a.accuracy !== null && b.accuracy !== null
          ? {
              before: b.accuracy, after: a.accuracy, n: a.n, agreement: this.agreement,
              perClass: a.perClass.map(({ rate, ...c }, k) => ({ ...c, before: b.perClass[k].rate, after: rate })),
              paired: pairedChange(before.predictions, after.predictions, this.reference, this.cleanIdx),
            }
          : null,
      triggers,
      targets,
      unstamped: [...this.unstamped],
      ...(trueAttack ? { trueAttack } : {}),
      estimated: worst,
    };
  }
}

/** One model's numbers on a probe. */
export interface ProbeRates {
  accuracy: number | null;
  n: number;
  /** Per class of the reference labels, ascending. */
  perClass: { label: number; n: number; rate: number }[];
  triggers: (Omit<TriggerMeasure, 'before' | 'after'> & { rate: number })[];
  targets: (Omit<TargetMeasure, 'before' | 'after'> & { rate: number })[];
  trueAttack?: { asr: number; n: number };
}

/** Per target, its worst single trigger: one still working is not averaged away by those that stopped. */
export function worstTriggerPerTarget(rates: ProbeRates): { target: number; rate: number; n: number }[] {
  return rates.targets.map(({ target }) =>
    rates.triggers.filter((t) => t.target === target).reduce((w, t) => (t.rate > w.rate ? { target, rate: t.rate, n: t.n } : w), { target, rate: 0, n: 0 }),
  );
}

/** The class each image is scored against: its label, or the model's own prediction for unlabelled data. */
export async function referenceClasses(model: OnnxModel, data: Dataset, runtime: Runtime, options: { batchSize?: number; signal?: AbortSignal } = {}): Promise<Int32Array> {
  return data.labels ?? (await predict(model, data, runtime, options)).labels;
}

export function concatSamples(parts: readonly Dataset[]): Dataset {
  const per = sampleSize(parts[0]);
  const n = parts.reduce((a, p) => a + p.n, 0);
  const x = new Float32Array(n * per);
  let at = 0;
  for (const p of parts) (x.set(p.x, at * per), (at += p.n));
  return { ...parts[0], n, x, dims: [n, ...parts[0].dims.slice(1)], labels: undefined, poisoned: undefined };
}
