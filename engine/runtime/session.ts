/**
 * onnxruntime-node sessions. A Runtime owns a cache of sessions keyed by the model's bytes and
 * the session options, so analyses that run the same graph share one compiled session; it is
 * passed in explicitly (no global cache), so two scans can run side by side.
 */
import * as ort from 'onnxruntime-node';
import { createHash } from 'node:crypto';
import { BackdoorLensError } from '../errors';
import type { OnnxModel } from '../graph/model';
import { hasExternalData } from '../graph/model-tensors';
import { sizeOf, type DType, type Tensor, type TensorData } from '../tensor';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';
export const executionProviders: readonly ExecutionProvider[] = ['cpu', 'cuda', 'webgpu'];

export interface RuntimeOptions {
  executionProvider?: ExecutionProvider;
  /** Intra-op threads; 0 or undefined lets onnxruntime choose (one per core). */
  threads?: number;
}

const ortType: Partial<Record<DType, ort.Tensor.Type>> = {
  float32: 'float32',
  float64: 'float64',
  float16: 'float16',
  int64: 'int64',
  int32: 'int32',
  int16: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

export function toOrtTensor(t: Tensor): ort.Tensor {
  const type = ortType[t.dtype];
  if (!type) throw new Error(`onnxruntime has no tensor type for ${t.dtype}`);
  return new ort.Tensor(type, t.data as never, t.dims as number[]);
}

export function fromOrtTensor(t: ort.Tensor): Tensor {
  const dtype = t.type === 'float16' ? 'float16' : (t.type as DType);
  return { dtype, dims: [...t.dims], data: t.data as TensorData };
}

/**
 * onnxruntime's error text on one line, without its C++ source locations and failed-check
 * expressions ("/onnxruntime_src/…/reshape_helper.h:84 onnxruntime::ReshapeHelper::…(…) size != 0 … was false.").
 */
export function ortMessage(e: unknown): string {
  const text = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
  return text
    .replace(/\/onnxruntime_src\/\S+:\d+ (?:\S+\([^)]*\)(?: const)? )?(?:[^.]*? was false\. )?/g, '')
    .slice(0, 400);
}

function availability(ep: ExecutionProvider): string | undefined {
  if (ep === 'cpu') return undefined;
  const backend = ort.listSupportedBackends().find((b) => b.name === ep);
  if (!backend) return `the ${ep} execution provider is not built into onnxruntime-node on ${process.platform}-${process.arch}`;
  if (ep === 'cuda' && !backend.bundled) {
    return 'the CUDA execution provider is not installed: its binaries are skipped by the default offline install. Install them with `npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12` (needs internet, CUDA 12 and cuDNN 9), then retry';
  }
  return undefined;
}

/** Runs one model; reuse it for many calls. */
export class ModelSession {
  constructor(
    readonly inner: ort.InferenceSession,
    readonly label: string,
  ) {}

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  async run(feeds: Record<string, Tensor | ort.Tensor>, fetches?: readonly string[]): Promise<Record<string, Tensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = v instanceof ort.Tensor ? v : toOrtTensor(v as Tensor);
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      result = fetches ? await this.inner.run(ortFeeds, fetches as string[]) : await this.inner.run(ortFeeds);
    } catch (e) {
      throw new BackdoorLensError('bad-data', `running ${this.label} failed: ${ortMessage(e)}`, { cause: e });
    }
    const out: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(result)) out[k] = fromOrtTensor(v as ort.Tensor);
    return out;
  }

  /**
   * Runs the model over a float32 batch-major array in slices of `batchSize`, without copying
   * the input (each batch is a subarray view). `onBatch` receives each batch's outputs.
   */
  async runBatched(
    input: { name: string; data: Float32Array; dims: readonly number[] },
    batchSize: number,
    onBatch: (outputs: Record<string, Tensor>, start: number, count: number) => void | Promise<void>,
    options: { fetches?: readonly string[]; extraFeeds?: Record<string, Tensor>; signal?: AbortSignal } = {},
  ): Promise<void> {
    const n = input.dims[0];
    const per = sizeOf(input.dims.slice(1));
    for (let start = 0; start < n; start += batchSize) {
      options.signal?.throwIfAborted();
      const count = Math.min(batchSize, n - start);
      const batch = new ort.Tensor('float32', input.data.subarray(start * per, (start + count) * per), [count, ...input.dims.slice(1)]);
      const outputs = await this.run({ ...options.extraFeeds, [input.name]: batch }, options.fetches);
      await onBatch(outputs, start, count);
    }
  }

  async release(): Promise<void> {
    await this.inner.release();
  }
}

export class Runtime {
  private readonly sessions = new Map<string, Promise<ModelSession>>();
  readonly options: Required<RuntimeOptions>;

  constructor(options: RuntimeOptions = {}) {
    ort.env.logLevel = 'fatal';
    this.options = { executionProvider: options.executionProvider ?? 'cpu', threads: options.threads ?? 0 };
    const missing = availability(this.options.executionProvider);
    if (missing) throw new BackdoorLensError('usage', `cannot use execution provider '${this.options.executionProvider}': ${missing}`);
  }

  /** A session for the model, compiled once per distinct graph. */
  session(model: OnnxModel | Uint8Array, label?: string): Promise<ModelSession> {
    if (!(model instanceof Uint8Array)) {
      // onnxruntime would resolve an external location against the working directory: never hand it one.
      const external = hasExternalData(model.proto);
      if (external) return Promise.reject(new BackdoorLensError('bad-file', `tensor '${external.tensor.name ?? ''}' (${external.where}) still refers to external data; load the model with loadModel, which reads it from the model's folder`, { file: model.source }));
    }
    const bytes = model instanceof Uint8Array ? model : model.toBytes();
    const key = createHash('sha256').update(bytes).digest('hex');
    let session = this.sessions.get(key);
    if (!session) {
      const name = label ?? (model instanceof Uint8Array ? 'model' : model.source);
      session = this.create(bytes, name);
      this.sessions.set(key, session);
      session.catch(() => this.sessions.delete(key));
    }
    return session;
  }

  private async create(bytes: Uint8Array, label: string): Promise<ModelSession> {
    const { executionProvider, threads } = this.options;
    const options: ort.InferenceSession.SessionOptions = {
      // Errors come back as exceptions and become one line of ours: onnxruntime's own log lines
      // (printed natively to stderr before the exception) would only precede it.
      logSeverityLevel: 4,
      executionProviders: executionProvider === 'cpu' ? ['cpu'] : [executionProvider, 'cpu'],
      graphOptimizationLevel: 'all',
      ...(threads > 0 ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
    };
    try {
      return new ModelSession(await ort.InferenceSession.create(bytes, options), label);
    } catch (e) {
      const message = ortMessage(e);
      if (executionProvider !== 'cpu' && /provider|cuda|webgpu|dawn|adapter/i.test(message)) {
        throw new BackdoorLensError('usage', `cannot start execution provider '${executionProvider}': ${message}. Use --provider cpu, or see the README section "Using a GPU"`, { cause: e });
      }
      throw new BackdoorLensError('unsupported-model', `onnxruntime cannot load ${label}: ${message}`, { file: label, cause: e });
    }
  }

  get cachedSessions(): number {
    return this.sessions.size;
  }

  async dispose(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) {
      try {
        await (await s).release();
      } catch {
        // a session that failed to build has nothing to release
      }
    }
  }
}
