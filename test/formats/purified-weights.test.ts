import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadModel, purifiedWeights, readWeights } from '../../engine/formats';
import { readSafetensors } from '../../engine/formats/safetensors-file';
import { fixes } from '../../engine/fixes/registry';
import type { Fix } from '../../engine/fixes/types';
import type { OnnxModel } from '../../engine/graph/model';
import { halfToFloat } from '../../engine/tensor';
import { cli, tempDir } from '../helpers';
import { logitsOf, maxAbsDiff, readNpzArrays, templatesDir } from './helpers';

/** Sets channel 0 of the first BN's scale to 0 in a copy: the kind of change a pruning fix makes. */
function zeroFirstBnChannel(onnx: OnnxModel): { model: OnnxModel; key: string } {
  const model = onnx.clone();
  const key = model.nodes.find((n) => n.op_type === 'BatchNormalization')!.input[1];
  const t = model.initializer(key)!;
  const data = Float32Array.from(t.data as Float32Array);
  data[0] = 0;
  model.setInitializer(key, { dtype: 'float32', dims: t.dims, data });
  return { model, key };
}

describe('purified weights keep the original keys and dtypes', () => {
  test('float16 state_dict: only the changed tensor differs, still float16, every key kept', async () => {
    const path = join(templatesDir, 'resnet50-cifar.pt');
    const model = await loadModel(path);
    const { model: purified, key } = zeroFirstBnChannel(model.onnx);
    const result = purifiedWeights(model, purified);
    assert.ok('bytes' in result, 'reason' in result ? result.reason : '');
    assert.deepEqual(result.changed, [key]);
    const written = readSafetensors('purified', result.bytes, 2 ** 28).tensors;
    const original = readWeights(path, 'pytorch');
    assert.deepEqual([...written.keys()], [...original.keys()], 'same keys, same order, num_batches_tracked included');
    for (const [k, t] of original) {
      const w = written.get(k)!;
      assert.equal(w.dtype, t.dtype, k);
      if (k === key) {
        assert.equal(halfToFloat((w.data as Uint16Array)[0]), 0);
        assert.deepEqual(Array.from(w.data as Uint16Array).slice(1), Array.from(t.data as Uint16Array).slice(1));
      } else assert.deepEqual(Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), k);
    }
  });

  test("DataParallel keys keep their 'module.' prefix", async () => {
    const model = await loadModel(join(templatesDir, 'resnet18-imagenet.pt'), { inputSize: { height: 64, width: 64 } });
    const result = purifiedWeights(model, zeroFirstBnChannel(model.onnx).model);
    assert.ok('bytes' in result);
    const keys = [...readSafetensors('p', result.bytes, 2 ** 28).tensors.keys()];
    assert.ok(keys.length > 0 && keys.every((k) => k.startsWith('module.')));
    assert.deepEqual(result.changed, ['module.bn1.weight']);
  });

  test('a fix that changes the graph structure gets a reason instead of a file', async () => {
    const model = await loadModel(join(templatesDir, 'vgg13_bn-cifar.pt'));
    const changed = model.onnx.clone();
    changed.setInitializer('mask', { dtype: 'float32', dims: [1], data: Float32Array.of(1) });
    changed.nodes.push({ op_type: 'Mul', input: ['flatten', 'mask'], output: ['masked'], attribute: [], name: 'mask' });
    const result = purifiedWeights(model, changed);
    assert.ok('reason' in result);
    assert.match(result.reason, /changed the graph's structure \(new tensors mask\).*use the purified \.onnx/);
  });
});

describe('fix on a weights-only input writes .safetensors beside the purified .onnx', () => {
  const testFix: Fix = {
    id: 'test-zero-bn-channel',
    title: 'Zero channel 0 of the first BN (test only)',
    needs: 'none',
    cost: 0,
    run: async (ctx) => ({ method: 'test-zero-bn-channel', model: zeroFirstBnChannel(ctx.model.onnx).model, pruned: [{ layer: 'bn1', channel: 0 }], notes: [] }),
  };
  before(() => (fixes as Fix[]).push(testFix));
  after(() => (fixes as Fix[]).splice((fixes as Fix[]).indexOf(testFix), 1));

  test('the .safetensors loads back into a model with the purified model’s logits', async () => {
    const dir = tempDir();
    const input = join(templatesDir, 'preactresnet18.pt');
    const out = join(dir, 'model.purified.onnx');
    const r = await cli('fix', input, '--method', testFix.id, '--out', out, '--json');
    // No data: nothing shows the backdoor removed (exit 1), and the files are written all the same.
    assert.equal(r.exitCode, 1, r.stderr);
    const weightsPath = join(dir, 'model.purified.safetensors');
    assert.ok(existsSync(weightsPath));
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.weights.path, weightsPath);
    assert.deepEqual(summary.weights.changed, ['layer1.0.bn1.weight']);
    const fromWeights = await loadModel(weightsPath);
    const fromOnnx = await loadModel(out);
    const x = readNpzArrays(join(templatesDir, 'preactresnet18.npz')).get('x')!;
    const a = await logitsOf(fromWeights, x), b = await logitsOf(fromOnnx, x);
    assert.ok(maxAbsDiff(a, b) <= 1e-5, String(maxAbsDiff(a, b)));
    const original = await logitsOf(await loadModel(input), x);
    assert.ok(maxAbsDiff(a, original) > 1e-3, 'the fix changed the model');
    // Never over an existing weights file without --force, and checked before any work.
    writeFileSync(join(dir, 'clash.safetensors'), 'keep');
    const clash = await cli('fix', input, '--method', testFix.id, '--out', join(dir, 'clash.onnx'));
    assert.equal(clash.exitCode, 4);
    assert.match(clash.stderr, /clash\.safetensors exists; pass --force/);
    assert.equal(readFileSync(join(dir, 'clash.safetensors'), 'utf8'), 'keep');
    assert.ok(!existsSync(join(dir, 'clash.onnx')));
    const forced = await cli('fix', input, '--method', testFix.id, '--out', join(dir, 'clash.onnx'), '--force');
    assert.equal(forced.exitCode, 1, forced.stderr);
    assert.notEqual(readFileSync(join(dir, 'clash.safetensors'), 'utf8'), 'keep');
  });

  test('an ONNX input writes no weights file', async () => {
    const dir = tempDir();
    const out = join(dir, 'fixed.onnx');
    const r = await cli('fix', join(templatesDir, '..', 'fmnist/badnets/model.onnx'), '--method', testFix.id, '--out', out);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.ok(existsSync(out));
    assert.ok(!existsSync(join(dir, 'fixed.safetensors')));
  });
});
