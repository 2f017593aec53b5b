/**
 * Whole-model gradients against PyTorch autograd (tools/fixtures/autodiff_models.py): the
 * Fashion-MNIST fixture CNN, a ResNet with residual adds and an overlapping max-pool, a
 * PreAct-ResNet (BN before conv, shape-chain flatten), a MobileNetV2/V3 (depthwise, ReLU6,
 * hardswish, squeeze-excite), and few-channel members of the torchvision families built from
 * torchvision's own classes (EfficientNet, ConvNeXt, DenseNet, RegNetY, Swin, ViT,
 * ShuffleNetV2, SqueezeNet, GoogLeNet), each exported with BN kept and BN folded (models
 * without BatchNorm once; the LayerNorm ones at opsets 13 and 17).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { GradientSession, type LossSpec } from '../../engine/autodiff';
import { OnnxModel } from '../../engine/graph/model';
import { insertChannelAffine } from '../../engine/graph/surgery';
import { Runtime } from '../../engine/runtime';
import { floatTensor, type Tensor } from '../../engine/tensor';
import { autodiffFixtures, cosineSimilarity, floats, maxRelativeError, readArrays } from './helpers';

interface ModelEntry {
  name: string;
  opset: number;
  input: number[];
  /** Absent for models without BatchNorm. */
  kept?: string;
  folded: string;
  affine: { kept?: string; folded: string };
  data: string;
  bnParams: string[];
}

const entries = JSON.parse(readFileSync(join(autodiffFixtures, 'models.json'), 'utf8')) as ModelEntry[];
const runtime = new Runtime({ threads: 1 });
after(() => runtime.dispose());

const lossCases: { key: string; loss: LossSpec; labels: 'labels' | 'targets'; weighted: boolean }[] = [
  { key: 'ce', loss: { kind: 'cross-entropy' }, labels: 'labels', weighted: false },
  { key: 'tce_w', loss: { kind: 'target-cross-entropy' }, labels: 'targets', weighted: true },
  { key: 'margin', loss: { kind: 'margin' }, labels: 'targets', weighted: false },
  { key: 'margin_w', loss: { kind: 'margin' }, labels: 'targets', weighted: true },
];

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  const cos = cosineSimilarity(actual, expected);
  const err = maxRelativeError(actual, expected);
  assert.ok(cos >= 0.9999, `${what}: cosine similarity ${cos}`);
  assert.ok(err <= 1e-3, `${what}: max relative error ${err}`);
}

for (const entry of entries) {
  const arrays = readArrays(join(autodiffFixtures, entry.data));
  const x = arrays.get('x')!;
  const labelsOf = (key: 'labels' | 'targets') => arrays.get(key)!.data as BigInt64Array;
  const weights = floats(arrays.get('weights'), 'weights');

  for (const variant of ['kept', 'folded'] as const) {
    const file = entry[variant];
    const affineAt = entry.affine[variant];
    if (!file || !affineAt) continue;
    const path = join(autodiffFixtures, file);
    const model = OnnxModel.fromBytes(readFileSync(path), path);

    describe(`${entry.name} (opset ${entry.opset}, ${entry.kept ? `BN ${variant}` : 'no BatchNorm'})`, () => {
      for (const c of lossCases) {
        test(`input gradient of ${c.key} matches PyTorch`, async () => {
          const session = await GradientSession.create(runtime, model, { loss: c.loss, weighted: c.weighted, wrt: ['input'], fetch: ['logits'] });
          const result = await session.run({ inputs: { input: x }, labels: labelsOf(c.labels), ...(c.weighted ? { weights } : {}) });
          assertClose(result.grads.input, floats(arrays.get(`grad.${c.key}`), c.key), `d${c.key}/dinput`);
          const expectedLoss = Number((arrays.get(`loss.${c.key}`)!.data as Float64Array)[0]);
          assert.ok(Math.abs(result.loss - expectedLoss) <= 1e-4 * Math.max(1, Math.abs(expectedLoss)), `loss ${result.loss} vs PyTorch ${expectedLoss}`);
          assert.deepEqual(result.fetched.logits.dims, [x.dims[0], 10]);
          assert.equal(session.evaluations, 1);
        });
      }

      if (variant === 'kept') {
        test('gradients with respect to every BN weight and bias (promoted initializers) match PyTorch', async () => {
          const session = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, wrt: entry.bnParams });
          const result = await session.run({ inputs: { input: x }, labels: labelsOf('labels') });
          for (const p of entry.bnParams) assertClose(result.grads[p], floats(arrays.get(`bn.${p}`), p), `dCE/d${p}`);
        });
      }

      test(`gradients with respect to a channel scale and shift inserted after ${affineAt} match PyTorch`, async () => {
        const affine = insertChannelAffine(model, affineAt);
        const session = await GradientSession.create(runtime, affine.model, { loss: { kind: 'cross-entropy' }, wrt: [affine.scaleInput, affine.shiftInput] });
        const ones: Tensor = floatTensor([affine.channels], new Float32Array(affine.channels).fill(1));
        const zeros: Tensor = floatTensor([affine.channels]);
        const result = await session.run({ inputs: { input: x, [affine.scaleInput]: ones, [affine.shiftInput]: zeros }, labels: labelsOf('labels') });
        assertClose(result.grads[affine.scaleInput], floats(arrays.get('affine.scale'), 'scale'), 'dCE/dscale');
        assertClose(result.grads[affine.shiftInput], floats(arrays.get('affine.shift'), 'shift'), 'dCE/dshift');
      });
    });
  }
}
