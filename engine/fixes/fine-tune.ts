/**
 * What the fine-tuning fixes (unlearning, adversarial unlearning) share: which weights are learned,
 * their working copies, the split of the fit images into a training part and the validation slice
 * that chooses the epoch or round, the triggers that can be stamped, Adam, scoring any weights
 * with one compiled session, and soft labels.
 */
import { softmaxRows } from '../analyses/stats/softmax';
import type { ReversedTrigger } from '../analyses/reversal/trigger';
import { subset, type Dataset } from '../data/types';
import { argmaxRows, imageInputOf, type Predictions } from '../evaluate';
import type { OnnxModel } from '../graph/model';
import { promoteInitializers } from '../graph/surgery';
import type { Runtime } from '../runtime/session';
import type { Tensor } from '../tensor';
import { heldOutIndices } from './holdout';
import { stampable, triggerLabel } from './triggers';

/** Ops whose float initializers are learned weights (BN's running statistics are not). */
const LEARNED: Record<string, number[]> = { Conv: [1, 2], ConvTranspose: [1, 2], Gemm: [1, 2], MatMul: [0, 1], BatchNormalization: [1, 2], Add: [0, 1], PRelu: [1] };

export function learnedParameters(model: OnnxModel): string[] {
  const names = new Set<string>();
  for (const node of model.nodes) {
    for (const i of LEARNED[node.op_type] ?? []) {
      const name = node.input[i];
      if (!name || !model.hasInitializer(name)) continue;
      const t = model.initializer(name)!;
      if (t.dtype === 'float32' && t.data.length > 0) names.add(name);
    }
  }
  return [...names];
}

/** The learned weights, as working copies (trained in place) with their shapes. */
export function trainableWeights(model: OnnxModel): { names: string[]; params: Map<string, Float32Array>; dims: Map<string, number[]> } {
  const names = learnedParameters(model);
  return {
    names,
    params: new Map(names.map((n) => [n, Float32Array.from(model.initializer(n)!.data as Float32Array)])),
    dims: new Map(names.map((n) => [n, [...model.initializer(n)!.dims]])),
  };
}

/** The fit images without the validation slice (`share` of each class, seeded), and the slice (all of them when share is 0). */
export function validationSplit(data: Dataset, share: number, seed: number): { train: Dataset; val: Dataset } {
  const valIdx = share > 0 ? heldOutIndices(data, share, seed) : [];
  const inVal = new Set(valIdx);
  const train = subset(data, Array.from({ length: data.n }, (_, i) => i).filter((i) => !inVal.has(i)));
  return { train, val: valIdx.length ? subset(data, valIdx) : train };
}

/** The triggers that can be stamped on the images; each other one is named in `notes` with the reason. */
export function stampableTriggers(triggers: readonly ReversedTrigger[], data: Dataset, notes: string[]): ReversedTrigger[] {
  const out: ReversedTrigger[] = [];
  for (const t of triggers) {
    const s = stampable(t, data);
    if (s.ok) out.push(t);
    else notes.push(`${triggerLabel(t)} not used: ${s.reason}`);
  }
  return out;
}

/** The weights as feeds of a graph whose initializers they replace (GradientSession inputs, WeightScorer). */
export function weightFeeds(params: ReadonlyMap<string, Float32Array>, dims: ReadonlyMap<string, number[]>): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const [name, p] of params) feeds[name] = { dtype: 'float32', dims: dims.get(name)!, data: p };
  return feeds;
}

/** A copy of the weights being trained: the best epoch or round is kept while training goes on. */
export function copyWeights(params: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  return new Map([...params].map(([k, v]) => [k, Float32Array.from(v)]));
}

/** A clone of `model` with the given weights as its initializers. */
export function withWeights(model: OnnxModel, params: ReadonlyMap<string, Float32Array>, dims: ReadonlyMap<string, number[]>, source: string): OnnxModel {
  const fixed = model.clone(source);
  for (const [name, p] of params) fixed.setInitializer(name, { dtype: 'float32', dims: dims.get(name)!, data: p });
  return fixed;
}

/** An epoch's or round's validation numbers. */
export interface ValidationScore {
  accuracy: number;
  /** Trigger success on the validation slice. */
  success: number;
}

/** Whether `s` lost at most `budget` of the original weights' (`start`) validation accuracy. */
export function withinBudget(s: ValidationScore, start: ValidationScore, budget: number): boolean {
  return start.accuracy - s.accuracy <= budget + 1e-9;
}

/**
 * Whether `s` replaces `best` as the weights to keep: `s` is within the accuracy budget of the
 * original weights (`start`), and either `best` is not, or `s` has the lower trigger success (on a
 * tie, the higher accuracy).
 */
export function replacesBest(s: ValidationScore, best: ValidationScore, start: ValidationScore, budget: number): boolean {
  const within = (x: ValidationScore) => withinBudget(x, start, budget);
  return within(s) && (!within(best) || s.success < best.success || (s.success === best.success && s.accuracy > best.accuracy));
}

/** Adam on a set of named float32 tensors. */
export class Adam {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private t = 0;
  constructor(private readonly lr: number) {}

  step(params: Map<string, Float32Array>, grads: Record<string, Float32Array>): void {
    this.t++;
    const [b1, b2, eps] = [0.9, 0.999, 1e-8];
    const c1 = 1 - b1 ** this.t, c2 = 1 - b2 ** this.t;
    for (const [name, p] of params) {
      const g = grads[name];
      if (!g) continue;
      let m = this.m.get(name), v = this.v.get(name);
      if (!m || !v) (this.m.set(name, (m = new Float32Array(p.length))), this.v.set(name, (v = new Float32Array(p.length))));
      for (let i = 0; i < p.length; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= (this.lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
      }
    }
  }
}

/** Scores any weights without compiling a session per set: the weights are inputs of one forward graph. */
export class WeightScorer {
  private constructor(
    private readonly session: Awaited<ReturnType<Runtime['session']>>,
    private readonly input: string,
    private readonly logits: string,
  ) {}

  static async create(runtime: Runtime, model: OnnxModel, names: string[]): Promise<WeightScorer> {
    const { model: promoted } = promoteInitializers(model, names);
    return new WeightScorer(await runtime.session(promoted, `${model.source} (weights as inputs)`), imageInputOf(model).name, model.outputs()[0].name);
  }

  async predictions(data: Dataset, params: Map<string, Float32Array>, dims: Map<string, number[]>, signal?: AbortSignal): Promise<Int32Array> {
    const feeds = weightFeeds(params, dims);
    const out = new Int32Array(data.n);
    await this.session.runBatched({ name: this.input, data: data.x, dims: data.dims }, 256, (o, start) => {
      const t = o[this.logits];
      out.set(argmaxRows(t.data as Float32Array, t.dims[1] as number), start);
    }, { fetches: [this.logits], extraFeeds: feeds, signal });
    return out;
  }
}

/** Per image, distil × the teacher's softmax + (1 − distil) × one-hot(label), row-major [N·K]. */
export function softLabels(teacher: Predictions, labels: Int32Array, distil: number): Float32Array {
  const k = teacher.numClasses;
  const p = softmaxRows(teacher.logits, k);
  return Float32Array.from(p, (v, at) => distil * v + (at % k === labels[Math.floor(at / k)] ? 1 - distil : 0));
}

