import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  bnLayers, bnStatus, convLayers, exposeTensors, foldShapeChains, GraphBuilder, inferShapes, insertChannelAffine,
  OnnxModel, promoteInitializers, replaceInitializers,
} from '../../engine/graph';
import { decodeOnnx } from '../../engine/formats/onnx';
import { truncatedTo } from '../../engine/graph/split';
import { Runtime } from '../../engine/runtime';
import { floatTensor, type Tensor } from '../../engine/tensor';
import { fmnist } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());
const kept = () => OnnxModel.fromBytes(readFileSync(join(fmnist.badnets, 'model.onnx')), 'badnets/model.onnx');
const folded = () => OnnxModel.fromBytes(readFileSync(join(fmnist.badnets, 'model.folded.onnx')), 'badnets/model.folded.onnx');

function images(n: number, seed = 1): Tensor {
  const data = new Float32Array(n * 784);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    data[i] = (s % 1000) / 1000;
  }
  return floatTensor([n, 1, 28, 28], data);
}

async function logits(model: OnnxModel, x: Tensor, extra: Record<string, Tensor> = {}): Promise<Float32Array> {
  const s = await runtime.session(model);
  const out = await s.run({ input: x, ...extra }, ['logits']);
  return out.logits.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('reading and writing', () => {
  test('a decode → encode → decode round trip keeps graph and weights', async () => {
    const m = kept();
    const again = OnnxModel.fromBytes(m.toBytes());
    assert.equal(again.nodes.length, m.nodes.length);
    assert.deepEqual(again.initializerNames().sort(), m.initializerNames().sort());
    assert.deepEqual(Array.from(again.initializer('conv1.weight')!.data as Float32Array), Array.from(m.initializer('conv1.weight')!.data as Float32Array));
    const x = images(4);
    assert.equal(maxAbsDiff(await logits(m, x), await logits(again, x)), 0);
  });

  test('typed access: inputs, outputs, initializers, producers and consumers', () => {
    const m = kept();
    assert.deepEqual(m.inputs(), [{ name: 'input', dtype: 'float32', dims: ['N', 1, 28, 28] }]);
    assert.deepEqual(m.outputs(), [{ name: 'logits', dtype: 'float32', dims: ['N', 10] }]);
    const w = m.initializer('conv2.weight')!;
    assert.equal(w.dtype, 'float32');
    assert.deepEqual(w.dims, [32, 16, 3, 3]);
    const bn1 = m.nodes.find((n) => n.op_type === 'BatchNormalization')!;
    assert.equal(m.producerOf(bn1.input[0])!.op_type, 'Conv');
    assert.equal(m.consumersOf(bn1.output[0])[0].op_type, 'Relu');
    assert.equal(m.layerName(bn1), 'bn1');
    assert.equal(m.opsetVersion(), 13);
  });
});

describe('shape inference', () => {
  test('infers every tensor of the fixture CNN with a symbolic batch', () => {
    const m = kept();
    const { shapes, unknown } = inferShapes(m);
    assert.deepEqual(unknown, []);
    const convs = m.nodes.filter((n) => n.op_type === 'Conv').map((n) => shapes.get(n.output[0]));
    assert.deepEqual(convs, [['N', 16, 28, 28], ['N', 32, 28, 28], ['N', 64, 14, 14]]);
    const pools = m.nodes.filter((n) => n.op_type === 'MaxPool').map((n) => shapes.get(n.output[0]));
    assert.deepEqual(pools, [['N', 32, 14, 14], ['N', 64, 7, 7]]);
    assert.deepEqual(shapes.get('logits'), ['N', 10]);
  });

  test('strides, pads, dilations, auto_pad, groups and ceil_mode follow the ONNX rules', () => {
    const b = new GraphBuilder('shapes');
    const x = b.input('x', 'float32', [2, 4, 15, 15]);
    const w = b.initializer('w', floatTensor([8, 2, 3, 3]));
    const c1 = b.op('Conv', [x, w], { strides: [2, 2], pads: [1, 1, 1, 1], group: 2 });
    const c2 = b.op('Conv', [x, w], { strides: [2, 2], auto_pad: 'SAME_UPPER', group: 2 });
    const c3 = b.op('Conv', [x, w], { dilations: [2, 2], group: 2 });
    const p1 = b.op('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 });
    const p2 = b.op('AveragePool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
    // ceil((15 + 2 − 2) / 2) + 1 = 9 windows, but the ninth would start at 16, inside the end padding.
    const p3 = b.op('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 });
    // ceil((15 + 2 − 4) / 2) + 1 = 8 (floor: 7): the last window starts at 13, a real row, and runs past the padding.
    const p4 = b.op('MaxPool', [x], { kernel_shape: [4, 4], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 });
    const g = b.op('GlobalAveragePool', [c1]);
    const f = b.op('Flatten', [g], { axis: 1 });
    for (const o of [c1, c2, c3, p1, p2, p3, p4, f]) b.output(o);
    const { shapes, unknown } = inferShapes(b.build());
    assert.deepEqual(unknown, []);
    assert.deepEqual(shapes.get(c1), [2, 8, 8, 8]);
    assert.deepEqual(shapes.get(c2), [2, 8, 8, 8]);
    assert.deepEqual(shapes.get(c3), [2, 8, 11, 11]);
    assert.deepEqual(shapes.get(p1), [2, 4, 8, 8]);
    assert.deepEqual(shapes.get(p2), [2, 4, 8, 8]);
    assert.deepEqual(shapes.get(p3), [2, 4, 8, 8]);
    assert.deepEqual(shapes.get(p4), [2, 4, 8, 8]);
    assert.deepEqual(shapes.get(f), [2, 8]);
  });

  test('an op without a shape rule is reported, not guessed', () => {
    const b = new GraphBuilder('odd');
    const x = b.input('x', 'float32', [1, 3]);
    b.output(b.op('NonMaxSuppression', [x]));
    const { unknown } = inferShapes(b.build());
    assert.equal(unknown.length, 1);
    assert.match(unknown[0].reason, /no shape rule for NonMaxSuppression/);
  });
});

describe('layer patterns', () => {
  test('Conv→BN→Relu chains are found by following the graph', () => {
    const m = kept();
    const layers = convLayers(m);
    assert.deepEqual(layers.map((l) => [l.name, l.bn?.name, l.activation?.op_type, l.outChannels]), [
      ['conv1', 'bn1', 'Relu', 16], ['conv2', 'bn2', 'Relu', 32], ['conv3', 'bn3', 'Relu', 64],
    ]);
    const bns = bnLayers(m);
    assert.deepEqual(bns.map((b) => [b.name, b.channels, b.conv ? m.layerName(b.conv) : null]), [['bn1', 16, 'conv1'], ['bn2', 32, 'conv2'], ['bn3', 64, 'conv3']]);
  });

  test('a BN fed by an Add (pre-activation block) is not paired with a conv by position', () => {
    const b = new GraphBuilder('preact');
    const x = b.input('x', 'float32', ['N', 4, 8, 8]);
    const w = b.initializer('conv.weight', floatTensor([4, 4, 3, 3]));
    const c = b.op('Conv', [x, w], { pads: [1, 1, 1, 1] });
    const sum = b.op('Add', [c, x]);
    const ones = b.initializer('bn.weight', floatTensor([4], new Float32Array(4).fill(1)));
    const zeros = b.initializer('bn.bias', floatTensor([4]));
    const mean = b.initializer('bn.running_mean', floatTensor([4]));
    const v = b.initializer('bn.running_var', floatTensor([4], new Float32Array(4).fill(1)));
    const bn = b.op('BatchNormalization', [sum, ones, zeros, mean, v], { epsilon: 1e-5 });
    b.output(b.op('Relu', [bn]));
    const m = b.build();
    const [layer] = bnLayers(m);
    assert.equal(layer.name, 'bn');
    assert.equal(layer.conv, undefined);
    assert.equal(convLayers(m)[0].bn, undefined);
  });

  test('BN kept vs folded is recognised with the evidence', () => {
    assert.equal(bnStatus(kept()).state, 'kept');
    const f = bnStatus(folded());
    assert.equal(f.state, 'folded');
    assert.match(f.evidence, /onnx::Conv_\d+/);
  });
});

describe('graph surgery', () => {
  test('exposing intermediate tensors adds outputs without changing the logits', async () => {
    const m = kept();
    const bnInputs = bnLayers(m).map((b) => b.input);
    const exposed = exposeTensors(m, bnInputs);
    assert.equal(exposed.outputs().length, 4);
    assert.equal(m.outputs().length, 1, 'the original is untouched');
    const x = images(3);
    const s = await runtime.session(exposed);
    const out = await s.run({ input: x });
    assert.deepEqual(out[bnInputs[1]].dims, [3, 32, 28, 28]);
    // Exposed tensors stop onnxruntime fusing Conv+BN, so allow float rounding differences.
    assert.ok(maxAbsDiff(out.logits.data as Float32Array, await logits(m, x)) < 1e-4);
  });

  test('truncating to an early tensor keeps only the nodes it needs and computes the same values', async () => {
    const m = kept();
    const bn2 = bnLayers(m)[1];
    const part = truncatedTo(m, [bn2.input]);
    assert.deepEqual(part.outputs().map((o) => o.name), [bn2.input]);
    assert.ok(part.nodes.length < m.nodes.length / 2, `${part.nodes.length} of ${m.nodes.length} nodes kept`);
    assert.ok(!part.nodes.some((n) => n.op_type === 'Gemm' || n.op_type === 'MatMul'), 'the classifier head is gone');
    assert.equal(m.outputs().length, 1, 'the original is untouched');
    const x = images(3);
    const whole = await (await runtime.session(exposeTensors(m, [bn2.input]))).run({ input: x });
    const truncated = await (await runtime.session(part)).run({ input: x });
    assert.deepEqual(truncated[bn2.input].dims, [3, 32, 28, 28]);
    assert.ok(maxAbsDiff(truncated[bn2.input].data as Float32Array, whole[bn2.input].data as Float32Array) < 1e-6);
  });

  test('a per-channel scale and shift after a node: identity at (1, 0), and it really scales', async () => {
    const m = kept();
    const bn2 = bnLayers(m)[1];
    const affine = insertChannelAffine(m, m.nodeName(bn2.node));
    assert.equal(affine.channels, 32);
    const x = images(3);
    const base = await logits(m, x);
    const ones = floatTensor([32], new Float32Array(32).fill(1));
    const zeros = floatTensor([32]);
    assert.ok(maxAbsDiff(await logits(affine.model, x, { [affine.scaleInput]: ones, [affine.shiftInput]: zeros }), base) < 1e-5);
    // Zeroing the scale of every channel and shifting by the BN bias equals pruning with γ = 0.
    const beta = m.initializer(bn2.bias)!.data as Float32Array;
    const pruned = replaceInitializers(m, { [bn2.scale]: floatTensor([32]) });
    const viaAffine = await logits(affine.model, x, { [affine.scaleInput]: zeros, [affine.shiftInput]: floatTensor([32], Float32Array.from(beta)) });
    assert.ok(maxAbsDiff(viaAffine, await logits(pruned, x)) < 1e-4);
    assert.ok(maxAbsDiff(viaAffine, base) > 1e-2, 'the transform changes the output');
  });

  test('replacing initializers changes a copy only', async () => {
    const m = kept();
    const w = m.initializer('fc.bias')!;
    const changed = replaceInitializers(m, { 'fc.bias': floatTensor(w.dims, new Float32Array(10).fill(100).map((v, i) => (i === 3 ? 1000 : 0))) });
    const x = images(2);
    const out = await logits(changed, x);
    assert.ok(out[3] > 500 && out[13] > 500);
    assert.notEqual((m.initializer('fc.bias')!.data as Float32Array)[3], 1000);
    assert.throws(() => replaceInitializers(m, { nope: w }), /no initializer named 'nope'/);
  });

  test('promoted initializers become inputs that reproduce the model when fed their values', async () => {
    const m = kept();
    const { model, values } = promoteInitializers(m, ['bn1.weight', 'bn1.bias']);
    assert.ok(model.inputs().some((i) => i.name === 'bn1.weight'));
    assert.equal(model.hasInitializer('bn1.weight'), false);
    const x = images(2);
    const feeds = Object.fromEntries(values);
    assert.ok(maxAbsDiff(await logits(model, x, feeds), await logits(m, x)) < 1e-4);
  });

  test('a saved modified copy loads again and runs', async () => {
    const m = kept();
    const changed = replaceInitializers(m, { 'fc.bias': floatTensor([10]) });
    const reloaded = OnnxModel.fromBytes(changed.toBytes());
    const x = images(2);
    assert.ok(maxAbsDiff(await logits(reloaded, x), await logits(changed, x)) === 0);
  });
});

describe('folding shape chains', () => {
  test('Shape→Gather→Unsqueeze→Concat→Reshape folds into a constant that keeps the batch symbolic', async () => {
    const b = new GraphBuilder('view');
    const x = b.input('x', 'float32', ['N', 2, 3, 3]);
    const shape = b.op('Shape', [x]);
    const zero = b.initializer('zero', { dtype: 'int64', dims: [], data: BigInt64Array.from([0n]) });
    const n = b.op('Gather', [shape, zero], { axis: 0 });
    const axes = b.constantInt64([0], 'axes');
    const n1 = b.op('Unsqueeze', [n, axes]);
    const minus = b.constantInt64([-1], 'minus_one');
    const target = b.op('Concat', [n1, minus], { axis: 0 });
    const y = b.op('Reshape', [x, target]);
    b.output(b.op('Relu', [y]), 'float32', ['N', 18]);
    const m = b.build();
    const { model, removed } = foldShapeChains(m);
    assert.ok(removed >= 4, `removed ${removed}`);
    assert.deepEqual(model.nodes.map((n) => n.op_type), ['Reshape', 'Relu']);
    const s = await runtime.session(model);
    for (const batch of [1, 5]) {
      const input = floatTensor([batch, 2, 3, 3], Float32Array.from({ length: batch * 18 }, (_, i) => i - 7));
      const out = Object.values(await s.run({ x: input }))[0];
      assert.deepEqual(out.dims, [batch, 18]);
      assert.deepEqual(Array.from(out.data as Float32Array), Array.from(input.data as Float32Array, (v) => Math.max(v, 0)));
    }
  });
});

describe('initializer aliases (torch.onnx.export stores equal parameters once)', () => {
  /** A BN whose bias is an Identity of another BN's bias, as the exporter writes a ResNet's shortcut BN. */
  function aliased(identities = 1) {
    const b = new GraphBuilder('alias');
    const x = b.input('x', 'float32', ['N', 2, 4, 4]);
    const ones = b.constantFloat([1, 1], [2], 'bn1.weight');
    const bias = b.constantFloat([0.5, -0.5], [2], 'bn1.bias');
    const mean = b.constantFloat([0, 0], [2], 'bn1.running_mean');
    const variance = b.constantFloat([1, 1], [2], 'bn1.running_var');
    for (let i = 0; i < identities; i++) b.node('Identity', [bias], {}, { outputs: [`bn2.bias${i ? `_${i}` : ''}`] });
    const y1 = b.op('BatchNormalization', [x, ones, bias, mean, variance]);
    const y2 = b.op('BatchNormalization', [y1, ones, 'bn2.bias', mean, variance]);
    b.node('Identity', [y2], {}, { outputs: ['out'] });
    b.output('out', 'float32', ['N', 2, 4, 4]);
    return b.build('alias.onnx');
  }

  test('on load each alias becomes the layer\'s own initializer, with the same values and the same outputs', async () => {
    const original = aliased();
    const loaded = decodeOnnx('alias.onnx', original.toBytes());
    assert.ok(loaded.hasInitializer('bn2.bias'), 'bn2.bias is stored');
    assert.ok(!loaded.nodes.some((n) => n.op_type === 'Identity' && n.output[0] === 'bn2.bias'), 'the Identity is gone');
    assert.deepEqual(Array.from(loaded.initializer('bn2.bias')!.data as Float32Array), [0.5, -0.5]);
    assert.ok(bnLayers(loaded).every((l) => [l.scale, l.bias, l.mean, l.variance].every((n) => loaded.hasInitializer(n))));
    // Rewriting one layer's parameter leaves the other's alone.
    loaded.setInitializer('bn2.bias', floatTensor([2], Float32Array.of(0, 0)));
    assert.deepEqual(Array.from(loaded.initializer('bn1.bias')!.data as Float32Array), [0.5, -0.5]);
    const x = floatTensor([1, 2, 4, 4], Float32Array.from({ length: 32 }, (_, i) => i / 10));
    const run = async (m: OnnxModel) => (await (await runtime.session(m)).run({ x }, ['out'])).out.data as Float32Array;
    assert.deepEqual(await run(decodeOnnx('alias.onnx', original.toBytes())), await run(original));
  });

  test('the copies hold at most as many values as the stored initializers: a file of many aliases of one tensor is not multiplied', () => {
    // 4 initializers of 2 values = 8 values of budget: 4 of 10 aliases are resolved, the rest stay Identity.
    const loaded = decodeOnnx('alias.onnx', aliased(10).toBytes());
    assert.equal(loaded.nodes.filter((n) => n.op_type === 'Identity' && n.input[0] === 'bn1.bias').length, 6);
    assert.equal(loaded.graph.initializer.length, 8);
  });
});
