/**
 * One engine session: a resolved configuration and the runtime it runs on. The CLI and the
 * language server's worker open a model, load data for it, describe, scan, fix and measure it
 * through a session, so both do the same work from the same settings and only parse input and
 * format output themselves.
 */
import type { DataKind } from './analyses/types';
import type { BackdoorLensConfig } from './config';
import { loadDataset, type Dataset } from './data';
import { evaluate, imageInputOf, type EvalResult } from './evaluate';
import { applyFix, type FixRequest } from './fix';
import { triggerFlags } from './fixes/bna-graph';
import type { FixResult } from './fixes/types';
import { purifiedWeights } from './formats';
import type { LoadedModel, LoadOptions } from './formats/types';
import { modelInfo, type ModelInfo } from './info';
import { loadModelForData } from './load-for-data';
import { checkOptions } from './methods';
import { modelOutline, type ModelOutline } from './outline';
import { strip, type StripResult } from './analyses/strip';
import { Runtime } from './runtime';
import type { Interrupt } from './runtime/limits';
import { scan, type ScanRequest, type ScanResult } from './scan';

/**
 * The settings a session runs with: backdoor-lens.json's shape, after flags or editor settings were
 * laid over it. Paths are as given (relative to the working folder, or absolute).
 */
export type SessionConfig = BackdoorLensConfig;

/** A data set to load for a model: a path and, for .npy or IDX images, its labels file. */
export interface DataRequest {
  path: string;
  labels?: string;
}

/** What a scan call adds to the session's settings: the data, the job's limits and progress. */
export type SessionScan = Omit<ScanRequest, 'runtime' | 'preprocess' | 'dataKind' | 'methods' | 'thresholdMultiplier' | 'seed' | 'batchSize' | 'methodOptions'> &
  Partial<Pick<ScanRequest, 'methods' | 'methodOptions' | 'thresholdMultiplier'>>;

/** What a fix call adds to the session's settings: the method, the data and how to measure. */
export type SessionFix = Omit<FixRequest, 'runtime' | 'dataKind' | 'seed' | 'batchSize' | 'thresholdMultiplier' | 'methodOptions'> & Partial<Pick<FixRequest, 'thresholdMultiplier' | 'methodOptions'>>;

export interface MeasureOptions {
  /** The attack's target class (all-to-one), or allToAll: each class c goes to (c+1) mod K. */
  target?: number;
  allToAll?: boolean;
  signal?: AbortSignal;
  /** Called as each step starts ('evaluating …', 'reading trigger_detected'), so the caller's limits name it. */
  onStage?(stage: string): void;
}

/** What a model does on a data set: accuracy, attack success, and the images a BNA model flags. */
export interface Measurement {
  eval: EvalResult;
  /** Per image, 1 when a BNA-corrected model's `trigger_detected` output flags it; absent for other models. */
  triggerFlags?: Uint8Array;
}

/** The files a fix's result becomes: the fixed ONNX model, and the fixed weights for a weights-only input. */
export interface FixFiles {
  files: { path: string; data: Uint8Array }[];
  /** Weights-only input: where the fixed weights went, or why they could not be written. */
  weights?: { path: string; tensors: number; changed: string[] } | { path: null; reason: string };
}

export class Session {
  private ownRuntime?: Runtime;

  /**
   * `runtime`: one the caller keeps (the worker's); by default the session makes its own when it
   * first runs a model, and disposes it. `optionsSource`: where the method options came from, for messages.
   */
  constructor(
    readonly config: SessionConfig,
    private readonly options: { runtime?: Runtime; optionsSource?: string } = {},
  ) {
    // An option no method declares would be silently ignored: name the known ones instead.
    checkOptions(config.methodOptions, options.optionsSource ?? 'methodOptions');
  }

  /** The runtime models run on; made on first use, so opening or describing a model never needs an execution provider. */
  get runtime(): Runtime {
    return this.options.runtime ?? (this.ownRuntime ??= new Runtime({ executionProvider: this.config.executionProvider, threads: this.config.threads }));
  }

  get dataKind(): DataKind {
    return this.config.dataKind ?? 'clean';
  }

  /** How models are read: the template, class count, input size for graphs built from weights, and the size limits. */
  loadOptions(interrupt?: Interrupt): LoadOptions {
    const c = this.config;
    const { maxModelBytes, maxTensorElements } = c.limits ?? {};
    const { height, width } = c.preprocess ?? {};
    return {
      arch: c.arch,
      numClasses: c.numClasses,
      // Only graphs built from weights take it; an ONNX model keeps the input size it declares.
      ...(height && width ? { inputSize: { height, width } } : {}),
      limits: { ...(maxModelBytes ? { maxModelBytes } : {}), ...(maxTensorElements ? { maxTensorElements } : {}) },
      ...(interrupt ? { interrupt } : {}),
    };
  }

  /** Opens a model; a size-agnostic network built from weights takes the configured data's image size. */
  open(path: string, options: { interrupt?: Interrupt } = {}): Promise<LoadedModel> {
    const c = this.config;
    return loadModelForData(path, this.loadOptions(options.interrupt), c.data ? { path: c.data, labels: c.labels } : undefined);
  }

  /** Loads a data set for the model's input (default: the configured data with its labels); undefined when there is none. */
  loadData(model: LoadedModel, request: DataRequest | undefined = this.config.data ? { path: this.config.data, labels: this.config.labels } : undefined): Dataset | undefined {
    if (!request) return undefined;
    return loadDataset({ path: request.path, labels: request.labels }, imageInputOf(model.onnx), this.config.preprocess ?? {});
  }

  /** The model's summary (`info`). */
  info(model: LoadedModel): ModelInfo {
    return modelInfo(model);
  }

  /** The model's per-node outline (the editor's outline document). */
  describe(model: LoadedModel): ModelOutline {
    return modelOutline(model);
  }

  /** Scans with the configured methods, options, threshold, seed and batch size; the call may override methods, options and the threshold multiplier. */
  scan(model: LoadedModel, request: SessionScan = {}): Promise<ScanResult> {
    const c = this.config;
    return scan(model, {
      runtime: this.runtime,
      preprocess: c.preprocess ?? {},
      dataKind: this.dataKind,
      methods: c.methods,
      thresholdMultiplier: c.threshold,
      seed: c.seed ?? 0,
      batchSize: c.batchSize,
      methodOptions: c.methodOptions,
      // Ignored when the caller's guard already holds the job's limits.
      timeLimitMs: c.timeLimitSeconds ? c.timeLimitSeconds * 1000 : undefined,
      maxMemoryMB: c.limits?.maxMemoryMB,
      ...request,
    });
  }

  /**
   * Applies a fix with the configured data kind, threshold, seed, batch size and method options. A
   * removal is confirmed by the scan these settings run (the call may ask for another, or none).
   */
  fix(model: LoadedModel, request: SessionFix): Promise<FixResult> {
    const c = this.config;
    const rescan = { methods: c.methods, methodOptions: c.methodOptions, thresholdMultiplier: c.threshold, timeLimitMs: c.timeLimitSeconds ? c.timeLimitSeconds * 1000 : undefined, maxMemoryMB: c.limits?.maxMemoryMB };
    return applyFix(model, { runtime: this.runtime, dataKind: this.dataKind, thresholdMultiplier: c.threshold, seed: c.seed ?? 0, batchSize: c.batchSize, methodOptions: c.methodOptions, rescan, ...request });
  }

  /** The files a fix's model becomes at `out`: the ONNX model, and for a weights-only input the fixed weights under the original keys. */
  fixFiles(model: LoadedModel, result: FixResult, out: { onnx: string; safetensors?: string }): FixFiles {
    if (!result.model) return { files: [] };
    const files = [{ path: out.onnx, data: result.model.toBytes() }];
    if (!model.sourceKeys) return { files };
    const weights = purifiedWeights(model, result.model, this.loadOptions());
    if ('bytes' in weights && out.safetensors) {
      files.push({ path: out.safetensors, data: weights.bytes });
      return { files, weights: { path: out.safetensors, tensors: weights.tensors, changed: weights.changed } };
    }
    return { files, weights: { path: null, reason: 'reason' in weights ? weights.reason : 'no weights path' } };
  }

  /** Clean accuracy on `data`, the attack success with a target (or all-to-all), and a BNA model's trigger flags. */
  async measure(model: LoadedModel, data: Dataset, options: MeasureOptions = {}): Promise<Measurement> {
    const batchSize = this.config.batchSize;
    options.onStage?.(`evaluating ${data.source}`);
    const result = await evaluate(model.onnx, data, this.runtime, { batchSize, target: options.target, allToAll: !!options.allToAll, signal: options.signal });
    options.onStage?.('reading trigger_detected');
    const flags = await triggerFlags(model.onnx, data, this.runtime, batchSize);
    return { eval: result, ...(flags ? { triggerFlags: flags } : {}) };
  }

  /** STRIP with the configured `strip` options: blends each image of `data` with clean images and flags low prediction entropy. */
  strip(model: LoadedModel, data: Dataset, clean: Dataset): Promise<StripResult> {
    const o = this.config.methodOptions?.strip ?? {};
    const given = (key: string) => (o[key] === undefined ? {} : { [key]: Number(o[key]) });
    return strip(model.onnx, data, clean, this.runtime, { seed: this.config.seed ?? 0, batchSize: Math.max(this.config.batchSize ?? 0, 200), ...given('perturbations'), ...given('alpha'), ...given('frr') });
  }

  async dispose(): Promise<void> {
    await this.ownRuntime?.dispose();
    this.ownRuntime = undefined;
  }
}
