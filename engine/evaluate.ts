/** One evaluation for everything: predictions, clean accuracy, attack success rate. */
import { badData, usageError } from './errors';
import type { Dataset } from './data/types';
import type { OnnxModel } from './graph/model';
import { imagesPerCall, sampleFloats } from './runtime/batch';
import type { Runtime } from './runtime/session';

export interface Predictions {
  /** [N, K] logits, row-major. */
  logits: Float32Array;
  numClasses: number;
  labels: Int32Array;
}

export function argmaxRows(logits: Float32Array, k: number): Int32Array {
  const n = logits.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0, bestV = logits[i * k];
    for (let j = 1; j < k; j++) if (logits[i * k + j] > bestV) (bestV = logits[i * k + j]), (best = j);
    out[i] = best;
  }
  return out;
}

/** The single image input an image classifier takes. */
export function imageInputOf(model: OnnxModel) {
  const inputs = model.inputs();
  if (inputs.length !== 1) {
    throw usageError(`${model.source} has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}); image classifiers with one input are supported`);
  }
  return inputs[0];
}

export async function predict(model: OnnxModel, data: Dataset, runtime: Runtime, options: { batchSize?: number; signal?: AbortSignal } = {}): Promise<Predictions> {
  const session = await runtime.session(model);
  const input = imageInputOf(model);
  const outputName = model.outputs()[0].name;
  let logits: Float32Array | undefined;
  let k = 0;
  await session.runBatched({ name: input.name, data: data.x, dims: data.dims }, options.batchSize ?? imagesPerCall(sampleFloats(data.dims), 128), (out, start, count) => {
    const t = out[outputName];
    if (t.dims.length !== 2 || t.dims[0] !== count) throw badData(data.source, `${model.source} output '${outputName}' has shape [${t.dims.join(', ')}]; a classifier's logits must be [N, classes]`);
    if (!logits) ((k = t.dims[1]), (logits = new Float32Array(data.n * k)));
    logits.set(t.data as Float32Array, start * k);
  }, { fetches: [outputName], signal: options.signal });
  return { logits: logits!, numClasses: k, labels: argmaxRows(logits!, k) };
}

export interface EvalOptions {
  batchSize?: number;
  /** Target class of an all-to-one attack: ASR = share of non-target samples predicted as it. */
  target?: number;
  /** All-to-all attack: ASR = share predicted as (y + 1) mod K. */
  allToAll?: boolean;
  signal?: AbortSignal;
}

export interface EvalResult {
  n: number;
  numClasses: number;
  /** Share predicted as their label; null without labels. */
  accuracy: number | null;
  /** Attack success rate, when a target or all-to-all is given. */
  asr?: number;
  /** Samples the ASR was measured on. */
  asrN?: number;
  /** Share of the ASR samples still predicted as their true (source) class. */
  sourceAccuracy?: number;
  predictions: Int32Array;
}

export function checkLabels(data: Dataset, numClasses: number, modelSource: string): void {
  if (!data.labels) return;
  for (let i = 0; i < data.n; i++) {
    if (data.labels[i] >= numClasses) {
      throw badData(data.source, `label ${data.labels[i]} of sample ${i} is out of range: ${modelSource} has ${numClasses} classes (0 to ${numClasses - 1})`);
    }
  }
}

export function scorePredictions(pred: Int32Array, data: Dataset, numClasses: number, options: EvalOptions = {}): Omit<EvalResult, 'predictions'> {
  const y = data.labels;
  let accuracy: number | null = null;
  if (y) {
    let correct = 0;
    for (let i = 0; i < data.n; i++) if (pred[i] === y[i]) correct++;
    accuracy = correct / data.n;
  }
  const result: Omit<EvalResult, 'predictions'> = { n: data.n, numClasses, accuracy };
  if (options.target !== undefined || options.allToAll) {
    if (!y) throw badData(data.source, 'attack success rate needs labels (the true class of each triggered image)');
    if (options.target !== undefined && (options.target < 0 || options.target >= numClasses)) throw usageError(`--target ${options.target} is not a class of this model (0 to ${numClasses - 1})`);
    let n = 0, hit = 0, source = 0;
    for (let i = 0; i < data.n; i++) {
      if (!options.allToAll && y[i] === options.target) continue;
      const goal = options.allToAll ? (y[i] + 1) % numClasses : options.target!;
      n++;
      if (pred[i] === goal) hit++;
      if (pred[i] === y[i]) source++;
    }
    result.asrN = n;
    result.asr = n ? hit / n : 0;
    result.sourceAccuracy = n ? source / n : 0;
  }
  return result;
}

export async function evaluate(model: OnnxModel, data: Dataset, runtime: Runtime, options: EvalOptions = {}): Promise<EvalResult> {
  const p = await predict(model, data, runtime, options);
  checkLabels(data, p.numClasses, model.source);
  return { ...scorePredictions(p.labels, data, p.numClasses, options), predictions: p.labels };
}
