/** What the commands share around the engine session: the job's limits and its stages. */
import { asBackdoorLensError, JobGuard, Session } from '../engine';
import type { Settings } from './options';

/**
 * The command's limits, started before anything is read. Under the supervisor (main.ts), the limits
 * and each stage go to the parent process, which ends the job if onnxruntime holds it past them.
 */
export function startJob(command: string, s: Settings): JobGuard {
  const send = process.env.BACKDOOR_LENS_SUPERVISED === '1' && process.send ? process.send.bind(process) : undefined;
  send?.({ type: 'limits', command, ...s.job });
  // Under the supervisor the limit counts from the command's start, as its watchdog counts it.
  const startedAt = Number(process.env.BACKDOOR_LENS_STARTED_AT);
  const elapsed = send && Number.isFinite(startedAt) ? Math.max(0, Date.now() - startedAt) : 0;
  const timeLimitMs = s.job.timeLimitMs ? Math.max(1, s.job.timeLimitMs - elapsed) : undefined;
  return new JobGuard({ command, ...s.job, timeLimitMs, reportedTimeLimitMs: s.job.timeLimitMs, onStage: send ? (stage) => send({ type: 'stage', stage }) : undefined });
}

/** Runs one stage under the job's limits: an abort on the way becomes the limit (or cancellation) error. */
export async function stage<T>(guard: JobGuard, name: string, run: () => T | Promise<T>): Promise<T> {
  guard.check(name);
  try {
    const result = await run();
    guard.check();
    return result;
  } catch (e) {
    if (guard.signal.aborted) throw guard.stopped();
    throw asBackdoorLensError(e);
  }
}

/** The engine session a command runs in, on the settings' runtime; the caller disposes it. */
export function openSession(s: Settings): Session {
  return new Session(s);
}
