/**
 * Owns the engine worker thread. Jobs go in one at a time; a cancelled job gets a grace period to
 * stop at the engine's next abort check, after which the thread is terminated (the job settles when
 * it has exited) and a fresh one is started for the next job, so a cancellation always ends cleanly.
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
  onProgress?(fraction: number, stage: string): void;
}

interface Pending {
  worker: Worker;
  resolve(r: JobResult): void;
  reject(e: unknown): void;
  onProgress?(fraction: number, stage: string): void;
}

export class WorkerHost {
  private worker?: Worker;
  private readonly pending = new Map<number, Pending>();
  private readonly probes = new Map<number, (m: WorkerMemory | undefined) => void>();
  private nextId = 1;
  /** Worker threads started so far: one, plus one per thread terminated or crashed. */
  started = 0;

  constructor(
    private readonly workerPath: string,
    private readonly options: { graceMs?: number; resourceLimits?: { maxOldGenerationSizeMb?: number } } = {},
  ) {}

  private start(): Worker {
    const w = new Worker(this.workerPath, { resourceLimits: this.options.resourceLimits });
    w.on('message', (m: FromWorker) => {
      if (m.type === 'memory') {
        this.probes.get(m.id)?.(m.memory);
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.type === 'progress') p.onProgress?.(m.fraction, m.stage);
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
    w.on('exit', (code) => fail(`exit code ${code}`));
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
          // The engine did not reach an abort check in time: stop the thread. The job ends only once
          // the thread has, so nothing it was writing can land after the next job has started.
          this.pending.delete(id);
          if (this.worker === worker) this.worker = undefined;
          const end = () => reject(cancelled());
          worker.terminate().then(end, end);
        }, this.options.graceMs ?? 2000);
      };
      const settle = <T>(f: (v: T) => void) => (v: T) => {
        options.signal?.removeEventListener('abort', onAbort);
        if (timer) clearTimeout(timer);
        f(v);
      };
      this.pending.set(id, { worker, resolve: settle(resolve), reject: settle(reject), onProgress: options.onProgress });
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

  async dispose(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
