import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { evaluate, loadDataset, loadModel, predict, Runtime } from '../engine';
import { imageInputOf } from '../engine/evaluate';
import { fmnist, type Reference } from './helpers';

const runtime = new Runtime();
after(() => runtime.dispose());

// The prunable ResNet-18 pair ships without model.folded.onnx (fixtures/fmnist/README.md).
const files = (name: keyof typeof fmnist) => (name.startsWith('badnetsPrunable') ? ['model.onnx'] : ['model.onnx', 'model.folded.onnx']);

for (const name of ['badnets', 'clean', 'all2all', 'badnetsPrunable', 'badnetsPrunableClean'] as const) {
  for (const file of files(name)) {
    describe(`${name}/${file} reproduces the PyTorch reference`, () => {
      const ref = JSON.parse(readFileSync(join(fmnist[name], 'reference.json'), 'utf8')) as Reference;
      const allToAll = name === 'all2all';

      test('same predictions and accuracy on the clean test set', async () => {
        const model = await loadModel(join(fmnist[name], file));
        const data = loadDataset({ path: join(fmnist.data, 'test.npz') }, imageInputOf(model.onnx));
        const r = await evaluate(model.onnx, data, runtime);
        assert.deepEqual(Array.from(r.predictions), ref.predictionsTest);
        assert.equal(r.accuracy, ref.accuracy);
      });

      test('same predictions and ASR on the triggered set', async () => {
        const model = await loadModel(join(fmnist[name], file));
        const data = loadDataset({ path: join(fmnist.data, 'triggered.npz') }, imageInputOf(model.onnx));
        const r = await evaluate(model.onnx, data, runtime, allToAll ? { allToAll: true } : { target: 0 });
        assert.deepEqual(Array.from(r.predictions), ref.predictionsTriggered);
        assert.equal(r.asr, ref.asr);
        assert.equal(r.sourceAccuracy, ref.sourceAccuracy);
      });

      test('logits of the first images within 1e-4', async () => {
        const model = await loadModel(join(fmnist[name], file));
        const data = loadDataset({ path: join(fmnist.data, 'test.npz') }, imageInputOf(model.onnx));
        const p = await predict(model.onnx, data, runtime);
        ref.logitsFirst8.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(p.logits[i * 10 + j] - v) <= 1e-4, `logit [${i}][${j}] ${p.logits[i * 10 + j]} vs ${v}`)));
      });
    });
  }
}

test('ASR counts only non-target samples for all-to-one and all samples for all-to-all', async () => {
  const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
  const data = loadDataset({ path: join(fmnist.data, 'triggered.npz') }, imageInputOf(model.onnx));
  const one = await evaluate(model.onnx, data, runtime, { target: 0 });
  const all = await evaluate(model.onnx, data, runtime, { allToAll: true });
  const nonTarget = Array.from(data.labels!).filter((y) => y !== 0).length;
  assert.equal(one.asrN, nonTarget);
  assert.equal(all.asrN, data.n);
});
