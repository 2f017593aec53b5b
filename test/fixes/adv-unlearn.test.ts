/**
 * Adversarial unlearning (engine/fixes/adv-unlearn.ts) on the bundled BadNets model: it writes
 * nothing without a trigger, states the outcome its own held-out measurement gives (outcome.ts),
 * keeps a round only within the accuracy budget on its validation slice, and its options are
 * checked. A short schedule (2 rounds, 2 inner steps): the test is about the rules, not efficacy.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { applyFix, loadDataset, loadModel, Runtime } from '../../engine';
import type { ReversedTrigger } from '../../engine/analyses/reversal/trigger';
import { imageInputOf } from '../../engine/evaluate';
import { advUnlearnOptions, ADV_UNLEARN_DEFAULTS } from '../../engine/fixes/adv-unlearn';
import { judge } from '../../engine/fixes/outcome';
import { findFix } from '../../engine/fixes/registry';
import { fmnist } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());
const clean = join(fmnist.data, 'clean.npz');

/** The fixture's true trigger (reference.json: rows and columns 24–26 set to 255, target 0) as a reversed patch. */
function truePatch(): ReversedTrigger {
  const mask = new Float32Array(28 * 28), pattern = new Float32Array(28 * 28);
  for (let r = 24; r <= 26; r++) for (let c = 24; c <= 26; c++) (mask[r * 28 + c] = 1), (pattern[r * 28 + c] = 1);
  return { kind: 'patch', target: 0, sources: [], mask, pattern, range: { min: [0], max: [1] } };
}

describe('adv-unlearn', () => {
  test('no trigger from the scan: no model, and why', async () => {
    const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const data = loadDataset({ path: clean }, imageInputOf(model.onnx));
    const r = await applyFix(model, { method: 'adv-unlearn', runtime, data, previous: new Map([['pairs', { state: { triggers: [] } }]]) });
    assert.equal(r.model, undefined);
    assert.equal(r.outcome, 'failed');
    assert.match(r.headline, /^adv-unlearn: failed — no backdoor trigger was found \(the scan reversed no trigger\), so no target class to unlearn; the model was left as it is; nothing written$/);
  });

  test('with the true patch as the trigger: the outcome is the one its held-out measurement gives, the kept round is within budget', async () => {
    const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const data = loadDataset({ path: clean }, imageInputOf(model.onnx));
    const r = await applyFix(model, {
      method: 'adv-unlearn', runtime, data, rescan: false,
      previous: new Map([['pairs', { state: { triggers: [truePatch()] } }]]),
      options: { rounds: 2, innerSteps: 2, batchSize: 50 },
    });
    assert.ok(r.model, r.headline);
    assert.ok(r.measurement?.estimated, 'the fix measured itself on held-out images');
    // The true patch works on the unfixed model, on the held-out images.
    assert.ok(r.measurement!.estimated!.before > 0.9, r.headline);
    assert.equal(r.outcome, judge(r.measurement!).outcome, r.headline);
    assert.match(r.headline, new RegExp(`^adv-unlearn: ${r.outcome} — `));
    const details = r.details as { keptRound: number; rounds: number; epsilon: number; validation: { round: number; accuracy: number; success: number }[] };
    assert.equal(details.rounds, 2);
    assert.equal(details.validation.length, 3);
    // ε = radius · range · √d on 28×28 images in [0, 1].
    assert.ok(Math.abs(details.epsilon - ADV_UNLEARN_DEFAULTS.radius * 28) < 1e-9, String(details.epsilon));
    const kept = details.validation[details.keptRound];
    assert.ok(details.validation[0].accuracy - kept.accuracy <= 0.015 + 1e-9, `kept round ${details.keptRound} costs more than the budget on the validation slice`);
    // No other round within budget had a lower trigger success.
    for (const s of details.validation) if (details.validation[0].accuracy - s.accuracy <= 0.015 + 1e-9) assert.ok(s.success >= kept.success, `round ${s.round} was better than the kept one`);
    // Round 0 kept: the weights are the original ones.
    const name = model.onnx.nodes.find((n) => n.op_type === 'Conv')!.input[1];
    const same = Buffer.from((r.model!.initializer(name)!.data as Float32Array).buffer).equals(Buffer.from((model.onnx.initializer(name)!.data as Float32Array).buffer));
    if (details.keptRound === 0) assert.ok(same, 'round 0 kept, but the weights changed');
    else assert.ok(!same, `round ${details.keptRound} kept, but the weights are the original ones`);
    assert.ok(r.notes.some((n) => /universal perturbations with ‖δ‖₂ ≤ \d+\.\d\d \(toward class 0; 2 projected steps each\)/.test(n)), r.notes.join('\n'));
  });

  test('options: defaults, parsed values and rejected ones', () => {
    assert.deepEqual(advUnlearnOptions({}), ADV_UNLEARN_DEFAULTS);
    assert.equal(advUnlearnOptions({ rounds: '3' }).rounds, 3);
    assert.equal(advUnlearnOptions({ untargeted: 'true' }).untargeted, true);
    assert.equal(advUnlearnOptions({ targeted: 'false' }).targeted, false);
    assert.throws(() => advUnlearnOptions({ rounds: 0 }), /option adv-unlearn\.rounds must be a whole number ≥ 1, got '0'/);
    assert.throws(() => advUnlearnOptions({ perturbedShare: 2 }), /option adv-unlearn\.perturbedShare must be a number ≥ 0 and ≤ 1/);
    assert.ok(findFix('adv-unlearn')?.options?.radius, 'the options are declared in the registry');
  });
});
