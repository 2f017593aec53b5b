/**
 * Input gradients through a BNA-style purified model (tools/fixtures/autodiff_models.py):
 * a small CNN f, two corrected copies g_t sharing f's weights with BN replaced by the clamp
 * min(max((z − μ)/σ, υ), ω)·γ + β (per channel in one, per unit in the other), and the rule
 * "if argmax f(x) = t and argmax g_t(x) ≠ t, output g_t's logits and flag x" built from
 * ArgMax, Equal, Not, And, Or, Reshape and Where, exported by torch.onnx. The batch holds
 * samples flagged for each target and samples left to f.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { GradientSession, type LossSpec } from '../../engine/autodiff';
import { OnnxModel } from '../../engine/graph/model';
import { Runtime } from '../../engine/runtime';
import { autodiffFixtures, cosineSimilarity, floats, maxRelativeError, readArrays } from './helpers';

const path = join(autodiffFixtures, 'models', 'decision_rule.onnx');
const model = OnnxModel.fromBytes(readFileSync(path), path);
const arrays = readArrays(join(autodiffFixtures, 'models', 'decision_rule.npz'));
const x = arrays.get('x')!;
const runtime = new Runtime({ threads: 1 });
after(() => runtime.dispose());

const losses: { key: string; loss: LossSpec; labels: string }[] = [
  { key: 'ce', loss: { kind: 'cross-entropy' }, labels: 'labels' },
  { key: 'margin', loss: { kind: 'margin' }, labels: 'targets' },
];

describe('a purified model with a Where-based decision rule', () => {
  test('the fixture flags some samples and leaves others to f', () => {
    const flagged = Array.from(arrays.get('flagged')!.data as ArrayLike<number | boolean>, Boolean);
    assert.ok(flagged.some((f) => f) && flagged.some((f) => !f), `flags ${flagged.join(',')}`);
  });

  for (const c of losses) {
    test(`input gradient of ${c.key} matches PyTorch; logits and flags match the forward rule`, async () => {
      const session = await GradientSession.create(runtime, model, { loss: c.loss, wrt: ['input'], fetch: ['logits', 'trigger_detected'] });
      const result = await session.run({ inputs: { input: x }, labels: arrays.get(c.labels)!.data as BigInt64Array });

      const logitsErr = maxRelativeError(floats(result.fetched.logits, 'logits'), floats(arrays.get('logits'), 'logits'));
      assert.ok(logitsErr <= 1e-4, `logits: relative error ${logitsErr}`);
      const flags = Array.from(result.fetched.trigger_detected.data as ArrayLike<number | boolean>, Boolean);
      const expectedFlags = Array.from(arrays.get('flagged')!.data as ArrayLike<number | boolean>, Boolean);
      assert.deepEqual(flags, expectedFlags);

      const expected = floats(arrays.get(`grad.${c.key}`), c.key);
      const cos = cosineSimilarity(result.grads.input, expected);
      const err = maxRelativeError(result.grads.input, expected);
      assert.ok(cos >= 0.9999, `cosine similarity ${cos}`);
      assert.ok(err <= 1e-3, `max relative error ${err}`);
      const expectedLoss = Number((arrays.get(`loss.${c.key}`)!.data as Float64Array)[0]);
      assert.ok(Math.abs(result.loss - expectedLoss) <= 1e-4 * Math.max(1, Math.abs(expectedLoss)), `loss ${result.loss} vs PyTorch ${expectedLoss}`);
    });
  }
});
