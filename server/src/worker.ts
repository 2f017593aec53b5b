/**
 * The engine worker thread: runs scans and fixes so the language server's own thread always
 * answers. One job at a time; cancellation aborts the engine's AbortSignal.
 */
import { parentPort } from 'node:worker_threads';
import { asBackdoorLensError, BackdoorLensError } from '../../engine/errors';
import type { FromWorker, ToWorker } from './jobs/messages';
import { EngineJobs } from './worker/engine-jobs';

const port = parentPort;
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
    const { heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
    send({ type: 'memory', id: m.id, memory: { heapUsed, heapTotal, external, arrayBuffers, collected: !!gc } });
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
