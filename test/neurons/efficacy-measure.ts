/**
 * Applies pruning fixes to a fixture and measures them on the held-out test and triggered sets
 * (target 0), while the defence sees only clean.npz (poisoned-sample.npz for EP).
 */
import { join } from 'node:path';
import { applyFix, evaluate, loadDataset, loadModel, type Runtime } from '../../engine';
import { imageInputOf } from '../../engine/evaluate';
import { fmnist } from '../helpers';
import { previousWithTrigger } from './badnets-trigger';

export interface FixRun {
  method: string;
  mode: 'fixed' | 'adaptive';
}

export interface FixMeasure extends FixRun {
  /** Test accuracy lost, as a fraction. */
  loss: number;
  asr: number;
  pruned: number;
}

/**
 * `options`: the fix's method options (e.g. an accuracy budget); `reverse`: hand over no trigger,
 * so the fix reverses its own with the 'pairs' detector instead of using the true one.
 */
export async function measureFixes(runtime: Runtime, dir: string, runs: FixRun[], how: { options?: Record<string, unknown>; reverse?: boolean } = {}) {
  const model = await loadModel(join(dir, 'model.onnx'));
  const set = (s: string) => loadDataset({ path: join(fmnist.data, `${s}.npz`) }, imageInputOf(model.onnx));
  const test = set('test'), triggered = set('triggered');
  const accuracy = async (m: typeof model.onnx) => (await evaluate(m, test, runtime, { batchSize: 500 })).accuracy!;
  const asr = async (m: typeof model.onnx) => (await evaluate(m, triggered, runtime, { batchSize: 500, target: 0 })).asr!;
  const base = { accuracy: await accuracy(model.onnx), asr: await asr(model.onnx) };
  const rows: FixMeasure[] = [];
  for (const { method, mode } of runs) {
    const ep = method === 'ep';
    const r = await applyFix(model, {
      method, runtime, data: set(ep ? 'poisoned-sample' : 'clean'), dataKind: ep ? 'mixed' : 'clean', mode,
      previous: how.reverse ? new Map() : previousWithTrigger(), batchSize: 500, options: how.options,
      // The fix fits on all of its set and measures itself on the test set, where this table measures too.
      heldOut: test, rescan: false,
    });
    rows.push({ method, mode, loss: base.accuracy - (await accuracy(r.model!)), asr: await asr(r.model!), pruned: r.pruned.length });
  }
  return { base, rows };
}
