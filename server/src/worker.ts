/**
 * The engine worker: a child process of the language server (a thread under older hosts) that runs
 * scans and fixes so the server always answers. One job at a time; cancellation aborts the engine's
 * AbortSignal, and the server kills the process when the job does not stop (WorkerHost).
 */
import { parentPort } from 'node:worker_threads';
import { asBackdoorLensError, BackdoorLensError } from '../../engine';
import type { FromWorker, ToWorker } from './jobs/messages';
import { EngineJobs } from './worker/engine-jobs';

interface Port {
  postMessage(m: FromWorker): void;
  on(event: 'message', listener: (m: ToWorker) => void): void;
}

/** The channel to the server: the IPC channel of a forked process, or a thread's parent port. */
function serverPort(): Port | undefined {
  if (parentPort) return parentPort as unknown as Port;
  if (!process.send) return undefined;
  // A server that went away takes its worker with it.
  process.on('disconnect', () => process.exit(0));
  return { postMessage: (m) => process.send!(m), on: (event, listener) => process.on(event, listener as (m: unknown) => void) };
}

const port = serverPort();
if (!port) throw new Error('worker.js runs inside the Backdoor Lens language server');

const jobs = new EngineJobs();
const running = new Map<number, AbortController>();
const send = (m: FromWorker) => port.postMessage(m);

/** Progress at most every 100 ms (and whenever the stage text changes) keeps the channel quiet. */
function throttled(id: number) {
  let last = 0;
  let lastStep: string | undefined;
  return (fraction: number, stage: string, step?: string) => {
    const now = Date.now();
    if (step === lastStep && now - last < 100) return;
    last = now;
    lastStep = step;
    send({ type: 'progress', id, fraction, stage, ...(step ? { method: step } : {}) });
  };
}

const gc = (globalThis as { gc?: () => void }).gc;

port.on('message', (m: ToWorker) => {
  if (m.type === 'cancel') {
    running.get(m.id)?.abort();
    return;
  }
  if (m.type === 'memory') {
    gc?.();
    const { heapUsed, heapTotal, external, arrayBuffers, rss } = process.memoryUsage();
    send({ type: 'memory', id: m.id, memory: { heapUsed, heapTotal, external, arrayBuffers, rss, collected: !!gc } });
    return;
  }
  const controller = new AbortController();
  running.set(m.id, controller);
  jobs
    .run(m.job, { signal: controller.signal, progress: throttled(m.id) })
    .then((result) => send({ type: 'done', id: m.id, result }))
    .catch((e: unknown) => {
      let err = asBackdoorLensError(e);
      // Whatever an aborted job threw on its way out, the user asked for a cancellation.
      if (controller.signal.aborted && err.code !== 'cancelled') err = new BackdoorLensError('cancelled', 'cancelled');
      send({ type: 'failed', id: m.id, error: { code: err.code, message: err.message, ...(err.file ? { file: err.file } : {}) } });
    })
    .finally(() => running.delete(m.id));
});
