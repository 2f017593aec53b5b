/**
 * GatedEvaluator: the threshold searches of Fine-Pruning and the pruning fixes evaluate one gated
 * model under many gate values. With the gates on the last conv layer the layers before it run
 * once and only the rest runs per evaluation; the predictions must be those of the whole gated
 * model, whatever the gates.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadDataset, loadModel, Runtime } from '../../engine';
import { GatedEvaluator, gateLayers, gatedPredictions, openGates, pruningGates } from '../../engine/analyses/neurons/gates';
import { convNeuronLayers } from '../../engine/analyses/neurons/layers';
import { subset } from '../../engine/data/types';
import { imageInputOf } from '../../engine/evaluate';
import { GraphBuilder } from '../../engine/graph/builder';
import { splitAtInputs } from '../../engine/graph/split';
import { fmnist } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());

async function fixture() {
  const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
  const full = loadDataset({ path: join(fmnist.data, 'clean.npz') }, imageInputOf(model.onnx));
  return { model, data: subset(full, Array.from({ length: 300 }, (_, i) => i)) };
}

test('gates on the last conv layer: the head stops at the layer, the tail holds only what follows, and predictions match the whole model', async () => {
  const { model, data } = await fixture();
  const layers = convNeuronLayers(model.onnx);
  const gated = gateLayers(model.onnx, [layers.at(-1)!]);
  const split = splitAtInputs(gated.model, gated.input, gated.gates.flatMap((g) => [g.scale, g.shift]))!;
  assert.ok(split, 'a cut exists');
  assert.ok(!split.tail.nodes.some((n) => n.op_type === 'Conv' && n.output[0] !== layers.at(-1)!.gateNode.output[0]), 'no earlier conv in the tail');
  assert.ok(split.tail.nodes.length < gated.model.nodes.length / 2, `${split.tail.nodes.length} of ${gated.model.nodes.length} nodes in the tail`);
  const evaluator = await GatedEvaluator.create(runtime, gated, data, { batchSize: 64 });
  assert.equal(evaluator.cached, true);
  const channels = layers.at(-1)!.channels;
  for (const k of [0, 1, Math.floor(channels / 2), channels]) {
    const values = k === 0 ? openGates(gated.gates) : pruningGates(gated.gates, Array.from({ length: k }, (_, c) => ({ layer: layers.at(-1)!.name, channel: c })));
    assert.deepEqual(await evaluator.predictions(values), await gatedPredictions(runtime, gated, data, values, { batchSize: 64 }), `${k} channels pruned`);
  }
});

test('gates on every layer: predictions still match the whole gated model (the cut, if any, starts at the first layer)', async () => {
  const { model, data } = await fixture();
  const layers = convNeuronLayers(model.onnx);
  const gated = gateLayers(model.onnx, layers);
  const evaluator = await GatedEvaluator.create(runtime, gated, data, { batchSize: 64 });
  const pruned = layers.map((l, i) => ({ layer: l.name, channel: i }));
  for (const values of [openGates(gated.gates), pruningGates(gated.gates, pruned)]) {
    assert.deepEqual(await evaluator.predictions(values), await gatedPredictions(runtime, gated, data, values, { batchSize: 64 }));
  }
});

test('a cut whose kept tensors would hold more memory than the images is not made: every evaluation runs the whole model', async () => {
  const { model, data } = await fixture();
  const layers = convNeuronLayers(model.onnx);
  const gated = gateLayers(model.onnx, [layers[0]]);
  const split = splitAtInputs(gated.model, gated.input, gated.gates.flatMap((g) => [g.scale, g.shift]))!;
  const perImage = split.frontier.reduce((s, f) => s + f.perSample, 0);
  // The first layer's output is larger than the 1×28×28 image; with the budget at the images' size
  // (far below 256 MiB here, so the floor decides) the cut is still made for 300 images …
  assert.ok(perImage > 28 * 28, `${perImage} floats per image cross the cut`);
  assert.equal((await GatedEvaluator.create(runtime, gated, data, { batchSize: 64 })).cached, true);
  // … and refused once the kept tensors pass 256 MiB and the images' own bytes.
  const many = Math.ceil((256 * 2 ** 20) / (4 * perImage)) + 1;
  const big = { ...data, n: many, x: new Float32Array(many * 28 * 28), dims: [many, 1, 28, 28], labels: new Int32Array(many) };
  assert.equal((await GatedEvaluator.create(runtime, gated, big, { batchSize: 64 })).cached, false);
});

test("a producer whose input is smaller than its output moves into the tail (a bottleneck's expanding conv): fewer floats cross", async () => {
  // x [N,1,8,8] → Conv 1→4 (t1, 256 floats) → Conv 4→16 (t2, 1 024 floats) → ·scale + shift (the gate) → pool → logits.
  const b = new GraphBuilder('bottleneck');
  const x = b.input('x', 'float32', ['N', 1, 8, 8]);
  const scale = b.input('scale', 'float32', [16]);
  const shift = b.input('shift', 'float32', [16]);
  const w1 = b.constantFloat(Array.from({ length: 4 }, (_, i) => 0.5 + i), [4, 1, 1, 1], 'w1');
  const w2 = b.constantFloat(Array.from({ length: 64 }, (_, i) => Math.sin(i)), [16, 4, 1, 1], 'w2');
  const t1 = b.op('Conv', [x, w1]);
  const t2 = b.op('Conv', [t1, w2]);
  const shape = b.constantInt64([1, 16, 1, 1], 'gate_shape');
  const gated = b.op('Add', [b.op('Mul', [t2, b.op('Reshape', [scale, shape])]), b.op('Reshape', [shift, shape])]);
  const pooled = b.op('Flatten', [b.op('GlobalAveragePool', [gated])], { axis: 1 });
  const w3 = b.constantFloat(Array.from({ length: 160 }, (_, i) => Math.cos(i)), [10, 16], 'w3');
  b.node('MatMul', [pooled, b.op('Transpose', [w3], { perm: [1, 0] })], {}, { outputs: ['logits'] });
  b.output('logits', 'float32', ['N', 10]);
  const model = b.build('bottleneck');
  const split = splitAtInputs(model, x, [scale, shift])!;
  assert.ok(split, 'a cut exists');
  assert.deepEqual(split.frontier, [{ name: t1, perSample: 4 * 8 * 8 }], 'the 4-channel tensor crosses, not the 16-channel one');
  assert.ok(split.tail.nodes.some((n) => n.output.includes(t2)), 'the expanding conv runs in the tail');
  // Head then tail gives the whole model's logits.
  const n = 3, xs = Float32Array.from({ length: n * 64 }, (_, i) => ((i * 37) % 11) / 11);
  const gates = { [scale]: { dtype: 'float32' as const, dims: [16], data: Float32Array.from({ length: 16 }, (_, i) => (i % 3 === 0 ? 0 : 1)) }, [shift]: { dtype: 'float32' as const, dims: [16], data: new Float32Array(16) } };
  const image = { [x]: { dtype: 'float32' as const, dims: [n, 1, 8, 8], data: xs } };
  const whole = (await (await runtime.session(model)).run({ ...image, ...gates }, ['logits'])).logits.data as Float32Array;
  const head = await (await runtime.session(split.head)).run(image, [t1]);
  const tail = (await (await runtime.session(split.tail)).run({ [t1]: head[t1], ...gates }, ['logits'])).logits.data as Float32Array;
  for (let i = 0; i < whole.length; i++) assert.ok(Math.abs(whole[i] - tail[i]) < 1e-5, `logit ${i}: ${whole[i]} vs ${tail[i]}`);
});
