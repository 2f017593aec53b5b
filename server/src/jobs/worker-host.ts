/**
 * Owns the engine worker: a child process, so that a job can always be ended. Jobs go in one at a
 * time; a cancelled job gets a grace period to stop at the engine's next abort check, after which the
 * process is killed (the job settles when it has exited) and a fresh one is started for the next job.
 * A thread could not be ended this way: onnxruntime runs a session in one native call that a thread's
 * termination waits for (a Loop that never ends would hold it forever); a process is killed at once.
 * The host also watches the job's time and memory limits from outside (ProcessWatchdog), for the
 * same reason, and ends the job there with the stage it last reported.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { getPriority, setPriority } from 'node:os';
import { memoryLimitError, ProcessWatchdog, timeLimitError, type JobLimits, type ErrorCode } from '../../../engine';
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
  onProgress?(fraction: number, stage: string, step?: string): void;
}

interface Pending {
  worker: ChildProcess;
  resolve(r: JobResult): void;
  reject(e: unknown): void;
  onProgress?(fraction: number, stage: string, step?: string): void;
}

export class WorkerHost {
  private worker?: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private readonly probes = new Map<number, (m: WorkerMemory | undefined) => void>();
  private nextId = 1;
  /** Worker processes started so far: one, plus one per process killed or crashed. */
  started = 0;

  constructor(
    private readonly workerPath: string,
    private readonly options: { graceMs?: number; resourceLimits?: { maxOldGenerationSizeMb?: number }; log?: (line: string) => void } = {},
  ) {}

  private start(): ChildProcess {
    const maxOld = this.options.resourceLimits?.maxOldGenerationSizeMb;
    const w = fork(this.workerPath, [], {
      serialization: 'advanced',
      // stdout is the LSP channel of `lsp --stdio`: the worker must never write there.
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      // Its temporary files are named for the server, which removes those a killed job left.
      env: { ...process.env, BACKDOOR_LENS_OWNER_PID: String(process.pid) },
      execArgv: [...process.execArgv, ...(maxOld ? [`--max-old-space-size=${maxOld}`] : [])],
    });
    w.on('message', (m: FromWorker) => {
      if (m.type === 'memory') {
        this.probes.get(m.id)?.(m.memory);
        return;
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
    w.on('exit', (code, signal) => fail(signal ? `signal ${signal}` : `exit code ${code}`));
    this.options.log?.(lowerPriority(w));
    this.worker = w;
    this.started++;
    return w;
  }

  /** Kills a worker process; resolves once it has exited, so nothing it was writing lands later. */
  private kill(w: ChildProcess): Promise<void> {
    if (this.worker === w) this.worker = undefined;
    if (w.exitCode !== null || w.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      w.once('exit', () => resolve());
      w.kill('SIGKILL');
    });
  }

  run(job: JobRequest, options: RunOptions = {}): Promise<JobResult> {
    if (options.signal?.aborted) return Promise.reject(cancelled());
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise<JobResult>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let watchdog: ProcessWatchdog | undefined;
      let stage = 'start-up';
      /** Ends the job from outside: the process is killed, and the job fails with `failure` once it has exited. */
      const end = (failure: JobFailure) => {
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        void this.kill(worker).then(() => settle(reject)(failure));
      };
      const onAbort = () => {
        send(worker, { type: 'cancel', id });
        // The engine did not reach an abort check in time (onnxruntime holds it): kill the process.
        timer = setTimeout(() => end(cancelled()), this.options.graceMs ?? 2000);
      };
      const settle = <T>(f: (v: T) => void) => (v: T) => {
        options.signal?.removeEventListener('abort', onAbort);
        if (timer) clearTimeout(timer);
        watchdog?.stop();
        f(v);
      };
      const limits = jobLimits(job);
      // Started at the job's first progress, when the engine's own clock is running: a fresh worker's start-up does not count.
      const watch = () => {
        if (watchdog || !(limits.timeLimitMs || limits.maxMemoryMB) || !worker.pid) return;
        watchdog = new ProcessWatchdog(worker.pid, limits, (breach) => {
          const command = job.kind === 'fix' ? 'fix' : job.kind === 'scan' ? 'scan' : 'describe';
          const e = breach.kind === 'memory' ? memoryLimitError(command, limits.maxMemoryMB!, stage, breach.usedMB ?? 0) : timeLimitError(command, limits.timeLimitMs!, stage, ' (the job did not stop at its own checks, e.g. inside onnxruntime, so it was ended)');
          end(new JobFailure('limit', e.message, job.path));
          // A backstop for a job held inside onnxruntime or a long synchronous stage: the engine stops
          // itself at its limit, with its stage, as soon as it reaches a check; only a job that does not is ended here.
        }, { graceMs: Math.max(30_000, 0.25 * (limits.timeLimitMs ?? 0)) });
      };
      const onProgress = options.onProgress;
      options = { ...options, onProgress: (fraction, text, step) => (watch(), (stage = text), onProgress?.(fraction, text, step)) };
      this.pending.set(id, { worker, resolve: settle(resolve), reject: settle(reject), onProgress: options.onProgress });
      options.signal?.addEventListener('abort', onAbort, { once: true });
      send(worker, { type: 'run', id, job });
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
      send(worker, { type: 'memory', id });
    });
  }

  async dispose(): Promise<void> {
    const w = this.worker;
    if (w) await this.kill(w);
  }
}

function send(w: ChildProcess, m: ToWorker): void {
  if (w.connected) w.send(m);
}

/** The limits a job's settings give it (the engine enforces them too; this is the outside backstop). */
function jobLimits(job: JobRequest): JobLimits {
  const s = job.settings as { timeLimitSeconds?: number; limits?: { maxMemoryMB?: number } };
  return { timeLimitMs: s.timeLimitSeconds ? s.timeLimitSeconds * 1000 : undefined, maxMemoryMB: s.limits?.maxMemoryMB };
}

/** How much lower than the server the worker runs: its onnxruntime threads take every core. */
const workerNiceness = 5;

/**
 * Scans use every core (engine-jobs.ts); below the server's priority they still leave the server
 * (hovers, outlines, cancellation) and the editor a core when they need one. Best effort: where the
 * OS refuses, the worker runs at the server's priority, as it did before.
 */
function lowerPriority(w: ChildProcess): string {
  if (w.pid === undefined) return 'engine worker started';
  const nice = Math.min(19, getPriority() + workerNiceness);
  try {
    setPriority(w.pid, nice);
    return `engine worker started (pid ${w.pid}, nice ${nice}: below the language server, so the editor keeps a core)`;
  } catch (e) {
    // Not permitted here (some containers and Windows accounts): same priority as the server.
    return `engine worker started (pid ${w.pid}) at the language server's priority: lowering it was refused (${e instanceof Error ? e.message : String(e)})`;
  }
}
