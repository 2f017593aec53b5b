/** The engine session: one configuration, and the model, data, description and measurements it yields. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Session } from '../engine';
import { fmnist, type Reference } from './helpers';

describe('Session', () => {
  const badnets = join(fmnist.badnets, 'model.onnx');
  const ref = JSON.parse(readFileSync(join(fmnist.badnets, 'reference.json'), 'utf8')) as Reference;

  test('loads the configured data by default, another set on request, none when none is configured', async () => {
    const session = new Session({ data: join(fmnist.data, 'clean.npz') });
    after(() => session.dispose());
    const model = await session.open(badnets);
    assert.equal(session.loadData(model)?.n, 1000);
    assert.equal(session.loadData(model, { path: join(fmnist.data, 'test.npz') })?.source, join(fmnist.data, 'test.npz'));
    assert.equal(new Session({}).loadData(model), undefined);
  });

  test('describes a model without an execution provider: the runtime is made only to run a model', async () => {
    // A provider this machine may lack: opening and describing must not ask for it.
    const session = new Session({ executionProvider: 'webgpu' });
    const model = await session.open(badnets);
    assert.equal(session.info(model).numClasses, 10);
    const outline = session.describe(model);
    assert.equal(outline.sha256, model.sha256);
    assert.ok(outline.layers.some((l) => l.op === 'Conv'));
    await session.dispose();
  });

  test('measures accuracy and attack success as the reference does, with no trigger flags for a plain model', async () => {
    const session = new Session({ batchSize: 100 });
    after(() => session.dispose());
    const model = await session.open(badnets);
    const test = session.loadData(model, { path: join(fmnist.data, 'test.npz') })!;
    const stages: string[] = [];
    const clean = await session.measure(model, test, { onStage: (s) => stages.push(s) });
    assert.equal(clean.eval.accuracy, ref.accuracy);
    assert.equal(clean.triggerFlags, undefined);
    assert.deepEqual(stages, [`evaluating ${test.source}`, 'reading trigger_detected']);
    const triggered = session.loadData(model, { path: join(fmnist.data, 'triggered.npz') })!;
    const attack = await session.measure(model, triggered, { target: ref.target! });
    assert.equal(attack.eval.asr, ref.asr);
  });
});
