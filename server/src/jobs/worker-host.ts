/**
 * Owns the engine worker thread. Jobs go in one at a time; a cancelled job gets a grace period to
 * stop at the engine's next abort check, after which it settles as cancelled, its thread is left to
 * finish on its own (and terminated then) and a fresh one is started for the next job, so a
 * cancellation always ends promptly and never takes the server down.
 */
import { Worker } from 'node:worker_threads';
import type { ErrorCode } from '../../../engine/errors';
import type { FromWorker, JobError, JobRequest, JobResult, ToWorker, WorkerMemory } from './messages';

export class JobFailure extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'JobFailure';
  }

  static from(e: JobError): JobFailure {
    return new JobFailure(e.code, e.message, e.file);
  }
}

export const cancelled = () => new JobFailure('cancelled', 'cancelled');

export interface RunOptions {
  signal?: AbortSignal;
  /** `step` names the stage for logs: 'load-model', 'load-data', an analysis or fix id. */
  onProgress?(fraction: number, stage: string, step?: string): void;
}

interface Pending {
  worker: Worker;
  resolve(r: JobResult): void;
  reject(e: unknown): void;
  onProgress?(fraction: number, stage: string, step?: string): void;
}

export class WorkerHost {
  private worker?: Worker;
  /** Threads left behind by jobs that did not stop in time; each is terminated once its job has ended. */
  private readonly abandoned = new Set<Worker>();
  /** Jobs each thread is running (started, not yet done or failed). */
  private readonly busy = new Map<Worker, Set<number>>();
  private readonly pending = new Map<number, Pending>();
  private readonly probes = new Map<number, (m: WorkerMemory | undefined) => void>();
  private nextId = 1;
  /** Worker threads started so far: one, plus one per thread abandoned or crashed. */
  started = 0;

  constructor(
    private readonly workerPath: string,
    private readonly options: { graceMs?: number; resourceLimits?: { maxOldGenerationSizeMb?: number } } = {},
  ) {}

  private start(): Worker {
    const w = new Worker(this.workerPath, { resourceLimits: this.options.resourceLimits });
    this.busy.set(w, new Set());
    w.on('message', (m: FromWorker) => {
      if (m.type === 'memory') {
        this.probes.get(m.id)?.(m.memory);
        return;
      }
      if (m.type !== 'progress') {
        this.busy.get(w)?.delete(m.id);
        // An abandoned thread whose job has now ended is idle in JavaScript: safe to terminate.
        if (this.abandoned.has(w) && !this.busy.get(w)?.size) void w.terminate();
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.type === 'progress') p.onProgress?.(m.fraction, m.stage, m.method);
      else {
        this.pending.delete(m.id);
        if (m.type === 'done') p.resolve(m.result);
        else p.reject(JobFailure.from(m.error));
      }
    });
    const fail = (why: string) => {
      if (this.worker === w) this.worker = undefined;
      for (const [id, p] of this.pending) {
        if (p.worker !== w) continue;
        this.pending.delete(id);
        p.reject(new JobFailure('internal', `the engine worker stopped: ${why}`));
      }
    };
    w.on('error', (e) => fail(e.message));
    w.on('exit', (code) => {
      this.busy.delete(w);
      this.abandoned.delete(w);
      fail(`exit code ${code}`);
    });
    this.worker = w;
    this.started++;
    return w;
  }

  run(job: JobRequest, options: RunOptions = {}): Promise<JobResult> {
    if (options.signal?.aborted) return Promise.reject(cancelled());
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise<JobResult>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        worker.postMessage({ type: 'cancel', id } satisfies ToWorker);
        timer = setTimeout(() => {
          if (!this.pending.has(id)) return;
          // The engine did not reach an abort check in time, most likely because it is inside one long
          // onnxruntime call. Terminating the thread there aborts the whole process (onnxruntime's
          // N-API callback throws into a torn-down environment), so the thread is abandoned instead:
          // the job ends as cancelled now, the next job gets a fresh thread, and the old one is
          // terminated once its job has ended (at its next abort check; no native call is pending then).
          // Its writes stay safe: a fix checks the aborted signal before writing, and writes exclusively.
          this.pending.delete(id);
          if (this.worker === worker) this.worker = undefined;
          this.abandoned.add(worker);
          reject(cancelled());
        }, this.options.graceMs ?? 2000);
      };
      const settle = <T>(f: (v: T) => void) => (v: T) => {
        options.signal?.removeEventListener('abort', onAbort);
        if (timer) clearTimeout(timer);
        f(v);
      };
      this.pending.set(id, { worker, resolve: settle(resolve), reject: settle(reject), onProgress: options.onProgress });
      this.busy.get(worker)?.add(id);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      worker.postMessage({ type: 'run', id, job } satisfies ToWorker);
    });
  }

  /**
   * The worker's heap after it collected garbage; undefined when no worker is running or it does
   * not answer within `timeoutMs` (a job holding its thread).
   */
  memory(timeoutMs = 5000): Promise<WorkerMemory | undefined> {
    const worker = this.worker;
    if (!worker) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => answer(undefined), timeoutMs);
      const answer = (m: WorkerMemory | undefined) => {
        clearTimeout(timer);
        this.probes.delete(id);
        resolve(m);
      };
      this.probes.set(id, answer);
      worker.postMessage({ type: 'memory', id } satisfies ToWorker);
    });
  }

  /**
   * Stops every thread: running jobs are cancelled and given `waitMs` to end (a thread terminated
   * inside an onnxruntime call would abort the process); idle threads are terminated at once.
   */
  async dispose(waitMs = 10_000): Promise<void> {
    if (this.worker) this.abandoned.add(this.worker);
    this.worker = undefined;
    for (const [id, p] of this.pending) p.worker.postMessage({ type: 'cancel', id } satisfies ToWorker);
    const deadline = Date.now() + waitMs;
    while ([...this.abandoned].some((w) => this.busy.get(w)?.size) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    await Promise.all([...this.abandoned].map((w) => w.terminate()));
    this.abandoned.clear();
  }
}
