/**
 * Issue 8's acceptance on fixtures/fmnist/badnets-prunable (width-8 ResNet-18, see
 * fixtures/fmnist/README.md) and its clean twin: test accuracy and ASR after each pruning fix,
 * fixed u = 3 beside adaptive mode at the engine's default budget (1 point) and at the
 * acceptance's (2 points), with the true BadNets trigger handed over as the reversed trigger.
 * The defence sees only clean.npz (poisoned-sample.npz for EP).
 *
 * ANP is left out unless BENCH_ANP_ITERATIONS is set: the reference 2000 iterations of its masks
 * took 514 s on this model on a busy 2-core CPU.
 */
import { join } from 'node:path';
import { applyFix, evaluate, imageInputOf, loadDataset, loadModel, Runtime, scan, type AnalysisOutput } from '../../engine';
import { badnetsTrigger } from '../../test/neurons/badnets-trigger';
import { root } from '../models';
import type { Row } from '../run';

export const name = 'Neuron fixes on the prunable BadNets fixture (ResNet-18 w8): fixed u = 3 vs adaptive at 1 and 2 points';

const fmnist = join(root, 'fixtures/fmnist');
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export async function run(): Promise<Row[]> {
  const runtime = new Runtime({ threads: 2 });
  const rows: Row[] = [];
  const iterations = Number(process.env.BENCH_ANP_ITERATIONS ?? 0);
  for (const name of ['badnets-prunable', 'badnets-prunable-clean']) {
    const model = await loadModel(join(fmnist, name, 'model.onnx'));
    const set = (s: string) => loadDataset({ path: join(fmnist, 'data', `${s}.npz`) }, imageInputOf(model.onnx));
    const clean = set('clean'), test = set('test'), triggered = set('triggered'), mixed = set('poisoned-sample');
    const base = (await evaluate(model.onnx, test, runtime)).accuracy!;
    rows.push({ model: name, method: '(none)', mode: '', pruned: 0, 'test acc': pct(base), ASR: pct((await evaluate(model.onnx, triggered, runtime, { target: 0 })).asr!) });
    const previous = new Map<string, AnalysisOutput>([['pairs', { state: { triggers: [badnetsTrigger()] } }]]);
    const methods = ['clp', 'bnp', 'ep', 'fp'];
    let anpSeconds = 0;
    if (iterations > 0) {
      const t0 = performance.now();
      const { report, outputs } = await scan(model, { runtime, data: clean, dataKind: 'clean', methods: ['anp'], seed: 0, batchSize: 250, methodOptions: { anp: { iterations } } });
      const masks = outputs.get('anp');
      if (!masks) throw new Error(`${name}: anp ${report.methods[0]?.status}: ${report.methods[0]?.reason}`);
      previous.set('anp', masks);
      anpSeconds = (performance.now() - t0) / 1000;
      methods.push('anp');
    }
    for (const method of methods) {
      for (const [mode, budget] of [['fixed', undefined], ['adaptive', undefined], ['adaptive', 2]] as const) {
        const t0 = performance.now();
        const r = await applyFix(model, {
          method, runtime, data: method === 'ep' ? mixed : clean, dataKind: method === 'ep' ? 'mixed' : 'clean', mode, previous, batchSize: 250,
          options: budget === undefined ? {} : { budget },
        });
        const seconds = (performance.now() - t0) / 1000;
        const acc = (await evaluate(r.model!, test, runtime)).accuracy!;
        rows.push({
          model: name, method: method === 'anp' ? `anp (${iterations} it., ${anpSeconds.toFixed(0)} s)` : method,
          mode: `${String(r.details?.mode ?? mode)}${r.details?.mode === 'adaptive' ? ` (${budget ?? 1} pt)` : ''}`, pruned: r.pruned.length,
          'test acc': pct(acc), 'Δ acc (points)': (100 * (acc - base)).toFixed(1), ASR: pct((await evaluate(r.model!, triggered, runtime, { target: 0 })).asr!), 'fix time (s)': seconds.toFixed(1),
        });
      }
    }
  }
  await runtime.dispose();
  return rows;
}
