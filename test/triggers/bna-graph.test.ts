import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadDataset, loadModel, Runtime } from '../../engine';
import { argmaxRows, imageInputOf, predict } from '../../engine/evaluate';
import { identityTransform, type ChannelTransform } from '../../engine/fixes/bna-fit';
import { bnaModel, correctedNetwork, TRIGGER_OUTPUT, type LayerCorrection } from '../../engine/fixes/bna-graph';
import { bnLayers } from '../../engine/graph/patterns';
import { fmnist } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());

async function setup() {
  const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
  const data = loadDataset({ path: join(fmnist.data, 'test.npz') }, imageInputOf(model.onnx));
  return { model, data };
}

const layersWith = (f: (bn: { name: string; channels: number }) => ChannelTransform[], model: Awaited<ReturnType<typeof setup>>['model']): LayerCorrection[] =>
  bnLayers(model.onnx).map((l) => ({ bn: l.node.name!, spatial: [], transforms: f({ name: l.name, channels: l.channels }) }));

async function runBna(model: Awaited<ReturnType<typeof setup>>['model'], data: Awaited<ReturnType<typeof setup>>['data'], layers: LayerCorrection[], target: number) {
  const combined = bnaModel(model.onnx, [{ target, layers }]);
  const session = await runtime.session(combined);
  const out = await session.run({ input: { dtype: 'float32', dims: data.dims, data: data.x } });
  return { combined, logits: out.logits.data as Float32Array, flags: out[TRIGGER_OUTPUT].data as Uint8Array };
}

test('with identity transforms g equals f: same logits, nothing flagged', async () => {
  const { model, data } = await setup();
  const layers = layersWith((l) => Array.from({ length: l.channels }, () => identityTransform()), model);
  const f = await predict(model.onnx, data, runtime);
  const g = await predict(correctedNetwork(model.onnx, layers), data, runtime);
  for (let i = 0; i < f.logits.length; i++) assert.ok(Math.abs(f.logits[i] - g.logits[i]) < 1e-4, `logit ${i}`);
  const { logits, flags } = await runBna(model, data, layers, 0);
  assert.equal(flags.reduce((a, b) => a + b, 0), 0);
  for (let i = 0; i < f.logits.length; i++) assert.ok(Math.abs(f.logits[i] - logits[i]) < 1e-4);
});

test('the inference rule: g_t replaces f exactly where f says t and g_t does not', async () => {
  const { model, data } = await setup();
  // A hand-set transform that pins every bn3 channel to 0: g_t predicts one constant class everywhere.
  const layers = layersWith((l) => Array.from({ length: l.channels }, () => (l.name === 'bn3' ? { shift: 0, scale: 1, lower: 0, upper: 0 } : identityTransform())), model);
  const g = await predict(correctedNetwork(model.onnx, layers), data, runtime);
  const constant = g.labels[0];
  assert.ok(g.labels.every((c) => c === constant), 'g predicts one class');
  const target = (constant + 1) % 10;
  const f = await predict(model.onnx, data, runtime);
  const { logits, flags } = await runBna(model, data, layers, target);
  const combined = argmaxRows(logits, 10);
  let flagged = 0;
  for (let i = 0; i < data.n; i++) {
    const expectFlag = f.labels[i] === target;
    assert.equal(flags[i], expectFlag ? 1 : 0, `sample ${i}`);
    assert.equal(combined[i], expectFlag ? constant : f.labels[i], `sample ${i}`);
    if (expectFlag) flagged++;
  }
  assert.ok(flagged > 50, `f predicts the target for ${flagged} samples`);
  // When g_t keeps the target class, nothing is flagged.
  const same = await runBna(model, data, layers, constant);
  assert.equal(same.flags.reduce((a, b) => a + b, 0), 0);
});

test('no weight of f changes and the interface keeps logits first', async () => {
  const { model, data } = await setup();
  const layers = layersWith((l) => Array.from({ length: l.channels }, (_, c) => ({ shift: 0.1 * (c % 3), scale: 1.2, lower: -3, upper: 3 })), model);
  const { combined } = await runBna(model, data, layers, 0);
  for (const name of model.onnx.initializerNames()) {
    assert.deepEqual(combined.initializer(name)!.data, model.onnx.initializer(name)!.data, name);
  }
  assert.deepEqual(combined.outputs().map((o) => o.name), ['logits', TRIGGER_OUTPUT]);
  assert.deepEqual(combined.outputs()[0].dims, model.onnx.outputs()[0].dims);
  assert.deepEqual(combined.inputs(), model.onnx.inputs());
});

test('a clamp transform is computed as clamp((z − μ)/σ, υ, ω)·γ + β', async () => {
  const { model, data } = await setup();
  const one = { ...data, n: 4, x: data.x.subarray(0, 4 * 784), dims: [4, 1, 28, 28] };
  const t = { shift: 0.5, scale: 2, lower: -0.25, upper: 0.75 };
  const layers = layersWith((l) => Array.from({ length: l.channels }, () => (l.name === 'bn1' ? t : identityTransform())), model);
  const bn1 = bnLayers(model.onnx)[0];
  const { exposeTensors } = await import('../../engine/graph/surgery');
  const fOut = await (await runtime.session(exposeTensors(model.onnx, [bn1.input]))).run({ input: { dtype: 'float32', dims: one.dims, data: one.x } });
  const gOut = await (await runtime.session(exposeTensors(correctedNetwork(model.onnx, layers), [bn1.output]))).run({ input: { dtype: 'float32', dims: one.dims, data: one.x } });
  const z = fOut[bn1.input].data as Float32Array, y = gOut[bn1.output].data as Float32Array;
  const rm = model.onnx.initializer(bn1.mean)!.data as Float32Array, rv = model.onnx.initializer(bn1.variance)!.data as Float32Array;
  const gamma = model.onnx.initializer(bn1.scale)!.data as Float32Array, beta = model.onnx.initializer(bn1.bias)!.data as Float32Array;
  for (let i = 0; i < z.length; i += 37) {
    const c = Math.floor(i / 784) % 16;
    const n = (z[i] - rm[c]) / Math.sqrt(rv[c] + bn1.epsilon);
    const expected = Math.max(Math.min((n - t.shift) / t.scale, t.upper), t.lower) * gamma[c] + beta[c];
    assert.ok(Math.abs(y[i] - expected) < 1e-4, `element ${i}: ${y[i]} vs ${expected}`);
  }
});
