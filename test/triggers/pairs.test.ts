/** The real class-pair scan on the clean twin and the all-to-all fixture; seeded determinism. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadDataset, loadModel, Runtime, scan } from '../../engine';
import { subset } from '../../engine/data/types';
import { imageInputOf } from '../../engine/evaluate';
import { fixtures, fmnist } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());
const cleanSet = join(fmnist.data, 'clean.npz');

async function pairsScan(modelPath: string, options: { seed?: number; classes?: number[]; pairs?: Record<string, unknown> } = {}) {
  const model = await loadModel(modelPath);
  let data = loadDataset({ path: cleanSet }, imageInputOf(model.onnx));
  if (options.classes) data = subset(data, Array.from({ length: data.n }, (_, i) => i).filter((i) => options.classes!.includes(data.labels![i])));
  return scan(model, { runtime, data, methods: ['pairs'], seed: options.seed ?? 0, methodOptions: options.pairs ? { pairs: options.pairs } : undefined });
}

test('the clean twin is clean: no pair is an outlier', async () => {
  const { report } = await pairsScan(join(fmnist.clean, 'model.onnx'));
  assert.equal(report.verdict, 'clean');
  assert.deepEqual(report.pairs.filter((p) => p.flagged), []);
  assert.equal(report.attackType, null);
  assert.equal(report.findings.filter((f) => f.code === 'BL001').length, 0);
  assert.ok(Math.max(...report.pairs.map((p) => p.anomalyIndex)) < 7);
});

test('the all-to-all fixture is backdoored and classified all-to-all', async () => {
  const { report } = await pairsScan(join(fixtures, 'fmnist/all2all/model.onnx'));
  assert.equal(report.verdict, 'backdoored');
  assert.equal(report.attackType, 'all-to-all');
  const flagged = report.pairs.filter((p) => p.flagged);
  assert.ok(flagged.length >= 2);
  assert.ok(flagged.filter((p) => p.target === (p.source + 1) % 10).length >= flagged.length - 1, JSON.stringify(flagged));
});

test('reversal is seeded: the same seed gives the same report, another seed other statistics', async () => {
  const small = { classes: [0, 3, 6], pairs: { warmup: 10, decideAt: 20, maxSteps: 30 } };
  const a = await pairsScan(join(fmnist.badnets, 'model.onnx'), small);
  const b = await pairsScan(join(fmnist.badnets, 'model.onnx'), small);
  const c = await pairsScan(join(fmnist.badnets, 'model.onnx'), { ...small, seed: 1 });
  assert.equal(a.report.pairs.length, 27);
  assert.deepEqual(a.report.pairs, b.report.pairs);
  assert.deepEqual(a.report.findings, b.report.findings);
  assert.deepEqual(a.images.map((i) => Buffer.from(i.png).toString('base64')), b.images.map((i) => Buffer.from(i.png).toString('base64')));
  assert.notDeepEqual(a.report.pairs.map((p) => p.statistic), c.report.pairs.map((p) => p.statistic));
});
