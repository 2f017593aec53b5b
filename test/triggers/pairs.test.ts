/** The trigger-reversal screens on the clean twin and the all-to-all fixture; not enough data; seeded determinism. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadDataset, loadModel, Runtime, scan } from '../../engine';
import { dataShortfall } from '../../engine/analyses/methods/pairs';
import { subset } from '../../engine/data/types';
import { imageInputOf } from '../../engine/evaluate';
import { fixtures, fmnist } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());
const cleanSet = join(fmnist.data, 'clean.npz');

async function pairsScan(modelPath: string, options: { seed?: number; keep?: (label: number, rank: number) => boolean; pairs?: Record<string, unknown> } = {}) {
  const model = await loadModel(modelPath);
  let data = loadDataset({ path: cleanSet }, imageInputOf(model.onnx));
  if (options.keep) {
    const seen = new Map<number, number>();
    data = subset(data, Array.from({ length: data.n }, (_, i) => i).filter((i) => {
      const l = data.labels![i], rank = seen.get(l) ?? 0;
      seen.set(l, rank + 1);
      return options.keep!(l, rank);
    }));
  }
  return scan(model, { runtime, data, methods: ['pairs'], seed: options.seed ?? 0, methodOptions: options.pairs ? { pairs: options.pairs } : undefined });
}

test('the clean twin is clean: every screen stays at or below its threshold', async () => {
  const { report } = await pairsScan(join(fmnist.clean, 'model.onnx'));
  assert.equal(report.verdict, 'clean');
  assert.deepEqual(report.pairs.filter((p) => p.flagged), []);
  assert.equal(report.attackType, null);
  assert.equal(report.findings.filter((f) => /^BL00/.test(f.code)).length, 0);
  assert.deepEqual(report.evidence.map((e) => e.method).sort(), ['pairs:shifts:patch', 'pairs:shifts:perturbation', 'pairs:targets:patch', 'pairs:targets:perturbation', 'pairs:targets:warp']);
  for (const e of report.evidence) assert.ok(!e.flagged && e.value <= e.threshold, e.summary);
});

test('the all-to-all fixture is backdoored and classified all-to-all with pairs c → c+1', async () => {
  const { report } = await pairsScan(join(fixtures, 'fmnist/all2all/model.onnx'));
  assert.equal(report.verdict, 'backdoored');
  assert.equal(report.attackType, 'all-to-all');
  const flagged = report.pairs.filter((p) => p.flagged);
  assert.ok(flagged.length >= 5, JSON.stringify(flagged));
  assert.ok(flagged.every((p) => p.target === (p.source + 1) % 10), JSON.stringify(flagged));
  assert.equal(report.findings.filter((f) => f.code === 'BL005').length, 1);
});

test('not enough data is stated, never a verdict: one image per class, or a single class', async () => {
  for (const keep of [(_: number, rank: number) => rank < 1, (label: number) => label === 3]) {
    const { report } = await pairsScan(join(fmnist.badnets, 'model.onnx'), { keep });
    assert.equal(report.verdict, 'inconclusive');
    const run = report.methods.find((m) => m.method === 'pairs')!;
    assert.equal(run.status, 'skipped');
    assert.match(run.reason!, /^not enough data for trigger reversal: it needs ≥ 5 clean images of every class/);
    assert.equal(report.findings.filter((f) => f.code === 'BL023').length, 1);
  }
  assert.match(dataShortfall([1], 5)!, /one output class|1 output class/);
  assert.equal(dataShortfall([5, 7, 9], 5), undefined);
  assert.match(dataShortfall([5, 0, 9, 1], 5)!, /2 of 4 classes have fewer \(class 1: 0, class 3: 1\)/);
  assert.match(dataShortfall([5, 0, 9], 5)!, /1 of 3 classes has fewer \(class 1: 0\)/);
});

test('reversal is seeded: the same seed gives the same report, another seed other trigger sizes', async () => {
  const small = { pairs: { maxSteps: 8, imagesPerClass: 8, heldOutPerClass: 4, objective: 'patch', shiftObjective: 'patch' } };
  const a = await pairsScan(join(fmnist.badnets, 'model.onnx'), small);
  const b = await pairsScan(join(fmnist.badnets, 'model.onnx'), small);
  const c = await pairsScan(join(fmnist.badnets, 'model.onnx'), { ...small, seed: 1 });
  assert.equal(a.report.labels.length, 10);
  assert.deepEqual(a.report.labels, b.report.labels);
  assert.deepEqual(a.report.evidence, b.report.evidence);
  assert.deepEqual(a.images.map((i) => Buffer.from(i.png).toString('base64')), b.images.map((i) => Buffer.from(i.png).toString('base64')));
  assert.notDeepEqual(a.report.labels.map((l) => l.l1), c.report.labels.map((l) => l.l1));
});
