/** Loading shared by the commands: the job's limits, the model, its data, a runtime. */
import { loadDataset, loadModelForData, Runtime, asBackdoorLensError, imageInputOf, JobGuard, type Dataset, type LoadedModel } from '../engine';
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

export async function openModel(path: string, s: Settings, guard?: JobGuard): Promise<LoadedModel> {
  const { maxModelBytes, maxTensorElements } = s.limits;
  const { height, width } = s.preprocess;
  const options = {
    arch: s.arch,
    numClasses: s.numClasses,
    // Only graphs built from weights take it; an ONNX model keeps the input size it declares.
    ...(height && width ? { inputSize: { height, width } } : {}),
    limits: { ...(maxModelBytes ? { maxModelBytes } : {}), ...(maxTensorElements ? { maxTensorElements } : {}) },
    interrupt: guard?.interrupt,
  };
  // A size-agnostic network built from weights takes the data's image size.
  return loadModelForData(path, options, s.data ? { path: s.data, labels: s.labels } : undefined);
}

export function openData(model: LoadedModel, path: string, s: Settings, labels = s.labels): Dataset {
  return loadDataset({ path, labels }, imageInputOf(model.onnx), s.preprocess);
}

export function openRuntime(s: Settings): Runtime {
  return new Runtime({ executionProvider: s.provider, threads: s.threads });
}
