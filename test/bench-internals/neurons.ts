/**
 * Neuron methods on a ResNet-18 CIFAR graph (3×32×32, BN kept) with 1 000 random images, CPU,
 * onnxruntime on 2 threads. Target: the quick scan (CLP + BNP) ≤ 10 s. BNP reads its default
 * 256 images; the row with bnp.samples=0 reads all 1 000 for comparison.
 * ANP per iteration (batch 128), the reference schedule (3 gradient evaluations) beside the
 * interactive one (2), timed over a few iterations and extrapolated to the 2000-iteration ceiling,
 * on the ResNet-18 and on the fixture CNN; the interactive schedule's stopping rule usually ends it
 * far earlier (its iteration count is in the scan's ANP notes).
 */
import { loadModel, scan } from '../../engine';
import { anpSettings, optimiseMasks, type AnpSchedule } from '../../engine/analyses/methods/anp';
import { preActivationLayers } from '../../engine/analyses/neurons/layers';
import type { Dataset } from '../../engine/data/types';
import { Runtime } from '../../engine/runtime';
import type { Row } from '../../bench/run';
import { fixtureModel, resnet18Onnx } from '../../bench/models';

export const name = 'Neuron methods: quick scan (CLP + BNP, 1 000 images) and ANP per iteration, reference and interactive schedules (CPU, 2 threads)';

function randomImages(n: number, dims: number[]): Dataset {
  const per = dims.reduce((a, b) => a * b, 1);
  let s = 12345;
  const x = Float32Array.from({ length: n * per }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32));
  return {
    source: 'random', n, x, dims: [n, ...dims], labels: Int32Array.from({ length: n }, (_, i) => i % 10),
    preprocess: { layout: 'NCHW', channels: dims[0], height: dims[1], width: dims[2], scale: 1, mean: [0], std: [1], resized: false, sourceLayout: 'NCHW' },
  };
}

async function quickScan(path: string, label: string): Promise<Row[]> {
  const l0 = performance.now();
  const model = await loadModel(path);
  const loadSeconds = (performance.now() - l0) / 1000;
  const dims = model.onnx.inputs()[0].dims.slice(1).map(Number);
  const data = randomImages(1000, dims);
  const rows: Row[] = [];
  for (const [what, options] of [['quick scan (bnp: first 256)', {}], ['quick scan (bnp.samples=0: all 1000)', { bnp: { samples: 0 } }]] as const) {
    const runtime = new Runtime({ threads: 2 });
    const t0 = performance.now();
    const { report } = await scan(model, { runtime, data, methods: ['clp', 'bnp'], methodOptions: options, batchSize: 64 });
    const total = (performance.now() - t0) / 1000;
    await runtime.dispose();
    const failed = report.methods.filter((m) => m.status !== 'ran').map((m) => `${m.method} ${m.status}: ${m.reason}`);
    if (failed.length) throw new Error(`quick scan of ${label}: ${failed.join('; ')}`);
    rows.push({ model: label, what, neurons: report.neurons.length, 'load s': loadSeconds, 'clp s': report.timings.clp / 1000, 'bnp s': report.timings.bnp / 1000, 'scan s': total, 'target ≤ 10 s (scan)': total <= 10 ? 'met' : 'missed' });
  }
  return rows;
}

async function anpTime(path: string, label: string, iterations: number, schedule: AnpSchedule): Promise<Row> {
  const model = await loadModel(path);
  const dims = model.onnx.inputs()[0].dims.slice(1).map(Number);
  const data = randomImages(500, dims);
  const runtime = new Runtime({ threads: 2 });
  // The stopping rule is left out here (checkEvery beyond the run): this row times one iteration.
  const s = { ...anpSettings({}), iterations, schedule, checkEvery: iterations + 1 };
  const ctx = { runtime, seed: 0, signal: new AbortController().signal, progress: () => {} };
  await optimiseMasks(model.onnx, preActivationLayers(model.onnx), data, { ...s, iterations: 1 }, ctx); // compile the gradient graph
  const t0 = performance.now();
  const r = await optimiseMasks(model.onnx, preActivationLayers(model.onnx), data, s, ctx);
  const perIteration = (performance.now() - t0) / 1000 / iterations;
  await runtime.dispose();
  return { model: label, what: `ANP ${schedule}, ${iterations} iterations measured`, 's/iteration': perIteration, 'gradient evals': r.gradientEvaluations, '2000 it. s': perIteration * 2000, '2000 it. min': (perIteration * 2000) / 60 };
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  const resnet = resnet18Onnx();
  if (resnet) rows.push(...(await quickScan(resnet, 'ResNet-18 CIFAR')));
  else rows.push({ model: 'ResNet-18 CIFAR', what: 'skipped: python3-torch not installed (apt-get install python3-torch)' });
  for (const schedule of ['reference', 'interactive'] as const) {
    rows.push(await anpTime(fixtureModel, 'fixture CNN (1×28×28)', 20, schedule));
    if (resnet) rows.push(await anpTime(resnet, 'ResNet-18 CIFAR', 3, schedule));
  }
  return rows;
}
