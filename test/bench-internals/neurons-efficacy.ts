/**
 * Efficacy of the pruning fixes on the committed BadNets fixture and its clean twin: clean
 * accuracy (test.npz) and ASR (triggered.npz, target 0) after each fix, fixed u = 3 beside
 * adaptive mode (the true BadNets trigger handed over as the reversed trigger, budget 1 point).
 * The defence sees only clean.npz (poisoned-sample.npz for EP).
 *
 * The last row is no defence: a greedy search over all 112 channels, guided by the true trigger's
 * success on clean.npz, keeping clean accuracy within 2 points. It shows how far channel pruning
 * can go on this model with an oracle ordering.
 *
 * ANP runs with the reference defaults (2000 iterations, tens of minutes on a CPU); set
 * BENCH_ANP_ITERATIONS to shorten it.
 */
import { anp } from '../../engine/analyses/methods/anp';
import { gateLayers, gatedPredictions, pruningGates } from '../../engine/analyses/neurons/gates';
import { preActivationLayers } from '../../engine/analyses/neurons/layers';
import { pruneNeurons, type NeuronRef } from '../../engine/analyses/neurons/prune';
import { stampTrigger } from '../../engine/analyses/reversal/trigger';
import type { AnalysisOutput } from '../../engine/analyses/types';
import { applyFix, evaluate, loadDataset, loadModel, Runtime } from '../../engine';
import { imageInputOf } from '../../engine/evaluate';
import { join } from 'node:path';
import type { Row } from '../../bench/run';
import { root } from '../../bench/models';
import { badnetsTrigger } from '../neurons/badnets-trigger';

export const name = 'Neuron fixes on the BadNets fixture: fixed u = 3 vs adaptive (reversed trigger, budget 1 point)';

const fmnist = join(root, 'fixtures/fmnist');
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

async function greedyCeiling(runtime: Runtime, path: string): Promise<Row> {
  const model = await loadModel(path);
  const clean = loadDataset({ path: join(fmnist, 'data/clean.npz') }, imageInputOf(model.onnx));
  const sources = Array.from({ length: clean.n }, (_, i) => i).filter((i) => clean.labels![i] !== 0);
  const stamped = stampTrigger(badnetsTrigger(), clean, sources);
  const layers = preActivationLayers(model.onnx);
  const gated = gateLayers(model.onnx, layers);
  const measure = async (pruned: NeuronRef[]) => {
    const g = pruningGates(gated.gates, pruned);
    const a = await gatedPredictions(runtime, gated, clean, g, { batchSize: 500 });
    const s = await gatedPredictions(runtime, gated, stamped, g, { batchSize: 500 });
    return { acc: a.reduce((x, p, i) => x + (p === clean.labels![i] ? 1 : 0), 0) / clean.n, success: s.reduce((x, p) => x + (p === 0 ? 1 : 0), 0) / stamped.n };
  };
  const base = await measure([]);
  // One pass over the channels, in order of how much pruning each alone lowers the trigger's success;
  // keep a channel when it lowers the success further and accuracy stays within 2 points.
  const all = layers.flatMap((l) => Array.from({ length: l.channels }, (_, channel) => ({ layer: l.name, channel })));
  const alone: { n: NeuronRef; m: Awaited<ReturnType<typeof measure>> }[] = [];
  for (const n of all) alone.push({ n, m: await measure([n]) });
  alone.sort((a, b) => a.m.success - b.m.success || b.m.acc - a.m.acc);
  let chosen: NeuronRef[] = [], current = base;
  for (const { n } of alone) {
    const m = await measure([...chosen, n]);
    if (base.acc - m.acc > 0.02 || m.success >= current.success) continue;
    chosen = [...chosen, n];
    current = m;
    if (current.success < 0.05) break;
  }
  const purified = pruneNeurons(model.onnx, chosen);
  const test = loadDataset({ path: join(fmnist, 'data/test.npz') }, imageInputOf(model.onnx));
  const triggered = loadDataset({ path: join(fmnist, 'data/triggered.npz') }, imageInputOf(model.onnx));
  return {
    model: 'badnets', method: 'ceiling (greedy on the true trigger)', mode: 'not a defence', pruned: chosen.length,
    'test acc': pct((await evaluate(purified, test, runtime)).accuracy!), ASR: pct((await evaluate(purified, triggered, runtime, { target: 0 })).asr!),
  };
}

export async function run(): Promise<Row[]> {
  const runtime = new Runtime({ threads: 2 });
  const rows: Row[] = [];
  const iterations = Number(process.env.BENCH_ANP_ITERATIONS ?? 2000);
  for (const name of ['badnets', 'clean'] as const) {
    const model = await loadModel(join(fmnist, name, 'model.onnx'));
    const set = (s: string) => loadDataset({ path: join(fmnist, 'data', `${s}.npz`) }, imageInputOf(model.onnx));
    const clean = set('clean'), test = set('test'), triggered = set('triggered'), mixed = set('poisoned-sample');
    const base = await evaluate(model.onnx, test, runtime);
    const baseAsr = (await evaluate(model.onnx, triggered, runtime, { target: 0 })).asr!;
    rows.push({ model: name, method: '(none)', mode: '', pruned: 0, 'test acc': pct(base.accuracy!), ASR: pct(baseAsr) });
    const previous = new Map<string, AnalysisOutput>([['pairs', { state: { triggers: [badnetsTrigger()] } }]]);
    const t0 = performance.now();
    previous.set('anp', await anp.run({ model, runtime, data: clean, dataKind: 'clean', numClasses: 10, thresholdMultiplier: 3, seed: 0, batchSize: 250, options: { iterations }, signal: new AbortController().signal, progress: () => {}, previous: new Map() }));
    const anpSeconds = (performance.now() - t0) / 1000;
    for (const method of ['clp', 'bnp', 'ep', 'fp', 'anp']) {
      for (const mode of ['fixed', 'adaptive'] as const) {
        const data = method === 'ep' ? mixed : clean;
        const r = await applyFix(model, { method, runtime, data, dataKind: method === 'ep' ? 'mixed' : 'clean', mode, previous, batchSize: 250 });
        const acc = (await evaluate(r.model!, test, runtime)).accuracy!;
        const asr = (await evaluate(r.model!, triggered, runtime, { target: 0 })).asr!;
        rows.push({
          model: name, method: method === 'anp' ? `anp (${iterations} it., ${anpSeconds.toFixed(0)} s)` : method, mode: String(r.details?.mode ?? mode), pruned: r.pruned.length,
          'test acc': pct(acc), 'Δ acc (points)': (100 * (acc - base.accuracy!)).toFixed(1), ASR: pct(asr),
          ...(mode === 'adaptive' && r.details?.triggerSuccessAfter !== undefined ? { 'reversed trigger on clean.npz': `${pct(r.details.triggerSuccessBefore as number)} → ${pct(r.details.triggerSuccessAfter as number)}`, 'budget used': `${(100 * (r.details.budgetUsed as number)).toFixed(1)} of 1.0` } : {}),
        });
      }
    }
  }
  rows.push(await greedyCeiling(runtime, join(fmnist, 'badnets/model.onnx')));
  await runtime.dispose();
  return rows;
}
