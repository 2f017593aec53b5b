/**
 * First-in first-out queue in front of the worker: the machine's cores go to one engine job at
 * a time. A job cancelled while it waits leaves the queue without ever starting.
 */
import type { JobRequest, JobResult } from './messages';
import { cancelled, type RunOptions, type WorkerHost } from './worker-host';

interface Waiting {
  job: JobRequest;
  options: RunOptions;
  onStart?(): void;
  resolve(r: JobResult): void;
  reject(e: unknown): void;
}

export class JobQueue {
  private readonly waiting: Waiting[] = [];
  private busy = false;

  constructor(private readonly host: WorkerHost) {}

  get length(): number {
    return this.waiting.length + (this.busy ? 1 : 0);
  }

  /** Runs the job when its turn comes; `onStart` fires when it leaves the queue for the worker. */
  run(job: JobRequest, options: RunOptions & { onStart?(): void } = {}): Promise<JobResult> {
    if (options.signal?.aborted) return Promise.reject(cancelled());
    return new Promise<JobResult>((resolve, reject) => {
      const entry: Waiting = { job, options, onStart: options.onStart, resolve, reject };
      this.waiting.push(entry);
      options.signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) {
            this.waiting.splice(i, 1);
            reject(cancelled());
          }
        },
        { once: true },
      );
      this.pump();
    });
  }

  private pump(): void {
    if (this.busy) return;
    const next = this.waiting.shift();
    if (!next) return;
    this.busy = true;
    next.onStart?.();
    const finish = (settle: () => void) => {
      this.busy = false;
      settle();
      // After the settled job's own continuations, so observers see it end before the next starts.
      queueMicrotask(() => this.pump());
    };
    this.host.run(next.job, next.options).then(
      (r) => finish(() => next.resolve(r)),
      (e) => finish(() => next.reject(e)),
    );
  }
}
