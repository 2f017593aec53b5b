import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadDataset, loadModel, Runtime } from '../../engine';
import { subset } from '../../engine/data/types';
import { imageInputOf } from '../../engine/evaluate';
import { quantile, strip } from '../../engine/analyses/strip';
import { fmnist } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());

test('quantile interpolates between order statistics', () => {
  assert.equal(quantile([3, 1, 2, 4], 0), 1);
  assert.equal(quantile([3, 1, 2, 4], 1), 4);
  assert.equal(quantile([3, 1, 2, 4], 0.5), 2.5);
});

test('STRIP flags BadNets-triggered inputs and few clean ones, deterministically', async () => {
  const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
  const spec = imageInputOf(model.onnx);
  const every = (n: number, k: number) => Array.from({ length: n / k }, (_, i) => i * k);
  const clean = subset(loadDataset({ path: join(fmnist.data, 'clean.npz') }, spec), every(1000, 4));
  const test_ = subset(loadDataset({ path: join(fmnist.data, 'test.npz') }, spec), every(1000, 5));
  const triggered = loadDataset({ path: join(fmnist.data, 'triggered.npz') }, spec);
  const nonTarget = subset(triggered, every(1000, 5).filter((i) => triggered.labels![i] !== 0));
  const options = { perturbations: 10, frr: 0.02, seed: 3 };
  const onTriggered = await strip(model.onnx, nonTarget, clean, runtime, options);
  const onClean = await strip(model.onnx, test_, clean, runtime, options);
  assert.ok(onTriggered.share >= 0.8, `triggered flagged ${onTriggered.share}`);
  assert.ok(onClean.share <= 0.1, `clean flagged ${onClean.share}`);
  assert.equal(onTriggered.threshold, onClean.threshold);
  const again = await strip(model.onnx, nonTarget, clean, runtime, options);
  assert.deepEqual(again.entropies, onTriggered.entropies);
});
