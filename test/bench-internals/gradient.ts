/**
 * Input gradients (cross-entropy, batch 64, CPU) against the forward pass of the same model,
 * and the peak memory of a ResNet-18 gradient run (measured in a child process so that earlier
 * cases do not count). Forward and gradient runs alternate, both on one intra-op thread (a
 * shared machine makes onnxruntime's spinning thread pool meaningless to time); medians are
 * reported, the ratio of the fastest runs, and the ratio of median CPU times (this process's
 * user + system time per run, which time spent waiting for a core does not inflate), with the
 * 1-minute load average over the measurement.
 * Target: gradient ≤ 2.5× forward, ResNet-18 peak RSS ≤ 1.5 GB.
 */
import * as ort from 'onnxruntime-node';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { GradientSession, type GradientSpec } from '../../engine/autodiff';
import { GraphBuilder } from '../../engine/graph/builder';
import { OnnxModel } from '../../engine/graph/model';
import { Runtime } from '../../engine/runtime';
import type { Tensor } from '../../engine/tensor';
import type { Row } from '../../bench/run';
import { fixtureModel, resnet18Onnx } from '../../bench/models';

export const name = 'Gradients: input gradient vs forward pass (cross-entropy, batch 64, CPU, 1 thread)';

const batch = 64;

function inputsFor(model: OnnxModel): { name: string; tensor: Tensor; labels: Int32Array } {
  const input = model.inputs()[0];
  const dims = [batch, ...input.dims.slice(1).map(Number)];
  const n = dims.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000);
  return { name: input.name, tensor: { dtype: 'float32', dims, data }, labels: Int32Array.from({ length: batch }, (_, i) => i % 10) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Wall-clock and CPU milliseconds of one call. */
async function timedBoth(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const wall = await timed(fn);
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

async function compare(label: string, path: string, reps: number, extra: { what: string; spec: (m: OnnxModel) => GradientSpec }[] = []): Promise<Row[]> {
  const model = OnnxModel.fromBytes(readFileSync(path), path);
  const { name: input, tensor, labels } = inputsFor(model);
  const runtime = new Runtime({ threads: 1 });
  const forward = await runtime.session(model);
  const variants = [{ what: 'input gradient', spec: (): GradientSpec => ({ loss: { kind: 'cross-entropy' }, wrt: [input] }) }, ...extra];
  const rows: Row[] = [];
  for (const v of variants) {
    const session = await GradientSession.create(runtime, model, v.spec(model));
    const runForward = () => forward.run({ [input]: tensor });
    const runGradient = () => session.run({ inputs: { [input]: tensor }, labels });
    await runForward();
    await runGradient();
    const f: number[] = [], g: number[] = [], fCpu: number[] = [], gCpu: number[] = [];
    const loadBefore = loadavg()[0];
    for (let i = 0; i < reps; i++) {
      const a = await timedBoth(runForward);
      const b = await timedBoth(runGradient);
      f.push(a.wall);
      fCpu.push(a.cpu);
      g.push(b.wall);
      gCpu.push(b.cpu);
    }
    rows.push({
      model: label,
      gradient: v.what,
      'forward ms': median(f),
      'gradient ms': median(g),
      'ratio (median)': `${(median(g) / median(f)).toFixed(2)}×`,
      'ratio (fastest)': `${(Math.min(...g) / Math.min(...f)).toFixed(2)}×`,
      'ratio (CPU time)': `${(median(gCpu) / median(fCpu)).toFixed(2)}×`,
      load: `${loadBefore.toFixed(1)}–${loadavg()[0].toFixed(1)}`,
    });
  }
  await runtime.dispose();
  return rows;
}

/** A linear classifier [64, 16] → [64, 10]: small enough for the per-call cost to show. */
function tinyModel(): OnnxModel {
  const b = new GraphBuilder('tiny', 13);
  const x = b.input('x', 'float32', ['N', 16]);
  b.node('Gemm', [x, b.constantFloat(Array.from({ length: 160 }, (_, i) => Math.sin(i)), [10, 16])], { transB: 1 }, { outputs: ['logits'] });
  b.output('logits', 'float32', ['N', 10]);
  return b.build('tiny linear model');
}

/** What the engine adds per call: the same gradient graph run through onnxruntime directly, in µs. */
async function overhead(reps: number): Promise<Row> {
  const runtime = new Runtime({ threads: 1 });
  const model = tinyModel();
  const tensor: Tensor = { dtype: 'float32', dims: [batch, 16], data: Float32Array.from({ length: batch * 16 }, (_, i) => Math.cos(i)) };
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  const input = 'x';
  const session = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, wrt: [input] });
  const raw = await ort.InferenceSession.create(session.graph.model.toBytes(), { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1 });
  const feeds = { [input]: new ort.Tensor('float32', tensor.data as Float32Array, tensor.dims as number[]), [session.graph.labelsInput]: new ort.Tensor('int64', BigInt64Array.from(labels, BigInt), [batch]) };
  const fetches = [session.graph.lossOutput, ...session.graph.gradOutputs.values()];
  await raw.run(feeds, fetches);
  const a: number[] = [], b: number[] = [];
  for (let i = 0; i < reps; i++) {
    a.push(await timed(() => session.run({ inputs: { [input]: tensor }, labels })));
    b.push(await timed(() => raw.run(feeds, fetches)));
  }
  await raw.release();
  await runtime.dispose();
  return {
    model: 'linear 16→10 (tiny)',
    gradient: 'per-call overhead of GradientSession.run over a raw onnxruntime run (µs, median)',
    'gradient ms': `${((median(a) - median(b)) * 1000).toFixed(0)} µs (run ${(median(a) * 1000).toFixed(0)} µs)`,
  };
}

/** Peak RSS of a fresh process that builds and runs the ResNet-18 gradient graph. */
function peakRss(path: string): number | undefined {
  const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--peak-rss', path], { encoding: 'utf8' });
  const m = /peak-rss-mb (\d+(?:\.\d+)?)/.exec(r.stdout ?? '');
  return m ? Number(m[1]) : undefined;
}

async function peakRssChild(path: string): Promise<void> {
  const model = OnnxModel.fromBytes(readFileSync(path), path);
  const { name: input, tensor, labels } = inputsFor(model);
  const runtime = new Runtime({ threads: 1 });
  const session = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, wrt: [input] });
  for (let i = 0; i < 3; i++) await session.run({ inputs: { [input]: tensor }, labels });
  console.log(`peak-rss-mb ${(process.resourceUsage().maxRSS / 1024).toFixed(0)}`);
  await runtime.dispose();
}

export async function run(): Promise<Row[]> {
  const rows = await compare('fixture CNN (1×28×28)', fixtureModel, 60);
  rows.push(await overhead(300));
  const resnet = resnet18Onnx();
  if (!resnet) {
    rows.push({ model: 'ResNet-18 CIFAR (3×32×32)', gradient: 'skipped: python3-torch not installed (apt-get install python3-torch)' });
    return rows;
  }
  const bnParameters = (m: OnnxModel) => m.nodes.filter((n) => n.op_type === 'BatchNormalization').flatMap((n) => n.input.slice(1, 3));
  rows.push(
    ...(await compare('ResNet-18 CIFAR (3×32×32)', resnet, 7, [
      { what: 'all BN weights and biases (ANP)', spec: (m) => ({ loss: { kind: 'cross-entropy' }, wrt: bnParameters(m) }) },
    ])),
  );
  const rss = peakRss(resnet);
  rows.push({ model: 'ResNet-18 CIFAR (3×32×32)', gradient: 'peak RSS of a gradient run (MB, fresh process)', 'gradient ms': rss ?? 'not measured' });
  return rows;
}

if (require.main === module && process.argv[2] === '--peak-rss') {
  peakRssChild(process.argv[3]).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
