/**
 * Unlearning (engine/fixes/unlearn.ts): the time limit covers the trigger re-estimation as well as
 * the training, so a long re-estimation is cut short and said so, instead of running past the limit.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { applyFix, loadDataset, loadModel, Runtime } from '../../engine';
import type { ReversedTrigger } from '../../engine/analyses/reversal/trigger';
import { imageInputOf } from '../../engine/evaluate';
import { fmnist } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());

/** The fixture's true trigger (rows and columns 24–26 white, target 0) as a reversed patch. */
function truePatch(): ReversedTrigger {
  const mask = new Float32Array(28 * 28), pattern = new Float32Array(28 * 28);
  for (let r = 24; r <= 26; r++) for (let c = 24; c <= 26; c++) (mask[r * 28 + c] = 1), (pattern[r * 28 + c] = 1);
  return { kind: 'patch', target: 0, sources: [], mask, pattern, range: { min: [0], max: [1] } };
}

describe('unlearn', () => {
  test('the re-estimation counts against the time limit: one that cannot finish in it is cut short, and the notes say so', { timeout: 120_000 }, async () => {
    const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const data = loadDataset({ path: join(fmnist.data, 'clean.npz') }, imageInputOf(model.onnx));
    // 10⁶ reversal steps cannot finish in 2 s; before the change they all ran before the first epoch.
    const r = await applyFix(model, {
      method: 'unlearn', runtime, data, rescan: false,
      previous: new Map([['pairs', { state: { triggers: [truePatch()] } }]]),
      options: { maxSeconds: 2, reversalSteps: 1_000_000, reversalSuccess: 1, epochs: 1 },
    });
    const notes = r.notes.join('\n');
    assert.match(notes, /triggers re-estimated against the current weights \(1000000 steps at most\): before: (patch|perturbation|warp) → 0 cut short by the time limit/, notes);
    assert.match(notes, /not re-estimated \(time limit\)/, notes);
    // The training still ran after the re-estimation (a third of the limit at most before it);
    // whether its one epoch or the limit ends it depends on the machine's speed.
    const steps = Number(/(\d+) steps on \d+ fit images, stopped by (the time limit of 2 s in epoch 1|1 epochs)/.exec(notes)?.[1] ?? 0);
    assert.ok(steps > 0, notes);
  });
});
