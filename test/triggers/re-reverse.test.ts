/**
 * The repair check of re-reverse.ts: reversing a detected trigger again finds one the detector would
 * still flag on the backdoored model itself, and none on its clean twin (same data, same trigger
 * kind, target and sources).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadDataset, loadModel, Runtime, scan } from '../../engine';
import type { ReversedTrigger } from '../../engine/analyses/reversal/trigger';
import { imageInputOf } from '../../engine/evaluate';
import { defaultReReverseOptions, reReverse } from '../../engine/fixes/re-reverse';
import { reverseAgain, reversedAgainText } from '../../engine/fixes/reverse-again';
import { fixtures, fmnist } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());

describe('re-reversal after a repair', () => {
  let trigger: ReversedTrigger;
  before(async () => {
    const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const set = loadDataset({ path: join(fmnist.data, 'clean.npz') }, imageInputOf(model.onnx));
    const { outputs } = await scan(model, { runtime, data: set, methods: ['pairs'], seed: 0 });
    [trigger] = (outputs.get('pairs')!.state as { triggers: ReversedTrigger[] }).triggers;
  });

  test('the detected trigger carries the largest size the detector would still flag', () => {
    assert.equal(trigger.target, 0);
    assert.ok(trigger.flaggedBelowSize! > 0 && Number.isFinite(trigger.flaggedBelowSize!));
  });

  test('on the backdoored model a flaggable trigger is found again; on the clean twin none is', async () => {
    const options = { ...defaultReReverseOptions, seed: 1 };
    const backdoored = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const set = loadDataset({ path: join(fmnist.data, 'clean.npz') }, imageInputOf(backdoored.onnx));
    const [again] = await reReverse(backdoored.onnx, runtime, set, [trigger], options);
    assert.ok(again.stillFlagged, `size ${again.size} vs ${trigger.flaggedBelowSize}`);
    const clean = await loadModel(join(fixtures, 'fmnist/clean/model.onnx'));
    const [twin] = await reReverse(clean.onnx, runtime, set, [trigger], options);
    assert.ok(!twin.stillFlagged, `size ${twin.size} vs ${trigger.flaggedBelowSize}`);
  });

  test("a fix's check: on a model that still has the backdoor the trigger survives on held-out images; on the clean twin it does not", async () => {
    const backdoored = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const spec = imageInputOf(backdoored.onnx);
    const fit = loadDataset({ path: join(fmnist.data, 'clean.npz') }, spec);
    const heldOut = loadDataset({ path: join(fmnist.data, 'test.npz') }, spec);
    const ask = async (fixed: typeof backdoored.onnx) =>
      reverseAgain({ fixed, runtime, fit, heldOut, reference: heldOut.labels!, triggers: [trigger, { ...trigger }], goal: 0.02, seed: 1 });
    const still = await ask(backdoored.onnx);
    assert.equal(still.length, 1, 'one question per kind and target');
    assert.ok(still[0].survived, reversedAgainText(still[0]));
    assert.ok(still[0].rate! > 0.5 && still[0].n > 100, reversedAgainText(still[0]));
    const clean = await loadModel(join(fixtures, 'fmnist/clean/model.onnx'));
    const [twin] = await ask(clean.onnx);
    assert.ok(!twin.survived, reversedAgainText(twin));
  });
});
