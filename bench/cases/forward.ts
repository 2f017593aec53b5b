/** The engine's forward pass against a raw onnxruntime session on the same graph and batch. */
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { loadModel, Runtime } from '../../engine';
import type { Row } from '../run';
import { fixtureModel, resnet18Onnx } from '../models';

export const name = 'Forward pass: engine vs raw onnxruntime (batch 64, CPU)';

async function time(fn: () => Promise<void>, reps: number): Promise<number> {
  await fn(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return (performance.now() - t0) / reps;
}

async function compare(label: string, path: string, reps: number): Promise<Row[]> {
  const bytes = readFileSync(path);
  const model = (await loadModel(path)).onnx;
  const input = model.inputs()[0];
  const dims = input.dims.map((d) => (typeof d === 'number' ? d : 64));
  const per = dims.slice(1).reduce((a, b) => a * b, 1);
  const batches = 4;
  const x = Float32Array.from({ length: 64 * batches * per }, (_, i) => ((i * 7919) % 1000) / 1000);

  const raw = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  const rawMs = await time(async () => {
    for (let b = 0; b < batches; b++) await raw.run({ [input.name]: new ort.Tensor('float32', x.subarray(b * 64 * per, (b + 1) * 64 * per), [64, ...dims.slice(1)]) });
  }, reps) / batches;
  await raw.release();

  const runtime = new Runtime();
  const session = await runtime.session(model);
  const engineMs = await time(() => session.runBatched({ name: input.name, data: x, dims: [64 * batches, ...dims.slice(1)] }, 64, () => undefined), reps) / batches;
  await runtime.dispose();
  return [
    { model: label, path: 'raw onnxruntime', 'ms/batch': rawMs, 'images/s': (64 * 1000) / rawMs, 'vs raw': '1.00×' },
    { model: label, path: 'engine', 'ms/batch': engineMs, 'images/s': (64 * 1000) / engineMs, 'vs raw': `${(engineMs / rawMs).toFixed(2)}×` },
  ];
}

export async function run(): Promise<Row[]> {
  const rows = await compare('fixture CNN (1×28×28)', fixtureModel, 20);
  const resnet = resnet18Onnx();
  if (resnet) rows.push(...(await compare('ResNet-18 CIFAR (3×32×32)', resnet, 5)));
  else rows.push({ model: 'ResNet-18 CIFAR (3×32×32)', path: 'skipped: python3-torch not installed (apt-get install python3-torch)' });
  return rows;
}
