/** GradientSession: feeding, reuse, promoted initializers, fetches, pruning, and the loss definitions. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildGradientGraph, GradientSession } from '../../engine/autodiff';
import { BackdoorLensError } from '../../engine/errors';
import { attrInt, attrInts } from '../../engine/graph/attributes';
import { GraphBuilder } from '../../engine/graph/builder';
import { OnnxModel } from '../../engine/graph/model';
import type { NodeProto } from '../../engine/graph/proto';
import { insertChannelAffine } from '../../engine/graph/surgery';
import { Runtime } from '../../engine/runtime';
import { floatTensor } from '../../engine/tensor';
import { fmnist } from '../helpers';
import { autodiffFixtures, maxRelativeError, readArrays } from './helpers';

const runtime = new Runtime({ threads: 1 });
after(() => runtime.dispose());
const modelPath = join(fmnist.badnets, 'model.folded.onnx');
const model = OnnxModel.fromBytes(readFileSync(modelPath), modelPath);
const arrays = readArrays(join(autodiffFixtures, 'models/fmnist_badnets.npz'));
const x = arrays.get('x')!;
const labels = arrays.get('labels')!.data as BigInt64Array;
const n = labels.length;

describe('GradientSession', () => {
  test('int32 and int64 labels give the same result, and every run is counted', async () => {
    const session = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, wrt: ['input'] });
    const a = await session.run({ inputs: { input: x }, labels });
    const b = await session.run({ inputs: { input: x }, labels: Int32Array.from(labels, Number) });
    assert.equal(a.loss, b.loss);
    assert.deepEqual(a.grads.input, b.grads.input);
    assert.equal(session.evaluations, 2);
  });

  test('weights of 1/N reproduce the mean loss and its gradient', async () => {
    const mean = await GradientSession.create(runtime, model, { loss: { kind: 'margin' }, wrt: ['input'] });
    const weighted = await GradientSession.create(runtime, model, { loss: { kind: 'margin' }, weighted: true, wrt: ['input'] });
    const a = await mean.run({ inputs: { input: x }, labels });
    const b = await weighted.run({ inputs: { input: x }, labels, weights: new Float32Array(n).fill(1 / n) });
    assert.ok(Math.abs(a.loss - b.loss) < 1e-6 * Math.max(1, Math.abs(a.loss)));
    assert.ok(maxRelativeError(b.grads.input, a.grads.input) < 1e-5);
  });

  test('the away loss is −mean_{j≠y} log p_j of the logits, and its gradient is the mean of the cross-entropy gradients toward the other classes', async () => {
    const session = await GradientSession.create(runtime, model, { loss: { kind: 'away-cross-entropy' }, weighted: true, wrt: ['input'], fetch: ['logits'] });
    const count = 4, per = (x.data as Float32Array).length / n;
    const xs = (x.data as Float32Array).slice(0, count * per);
    const ys = labels.slice(0, count);
    const weights = Float32Array.of(0.1, 0.2, 0.3, 0.4);
    const run = (data: Float32Array) => session.run({ inputs: { input: { dtype: 'float32', dims: [count, 1, 28, 28], data } }, labels: ys, weights });
    const r = await run(xs);
    const z = r.fetched.logits.data as Float32Array;
    let expected = 0;
    for (let i = 0; i < count; i++) {
      const row = Array.from(z.subarray(10 * i, 10 * i + 10));
      const m = Math.max(...row);
      const total = row.reduce((s, v) => s + Math.exp(v - m), 0);
      const y = Number(ys[i]);
      const meanLogP = row.reduce((s, v, j) => (j === y ? s : s + v - m - Math.log(total)), 0) / 9;
      expected += weights[i] * -meanLogP;
    }
    assert.ok(Math.abs(r.loss - expected) < 1e-4 * Math.max(1, expected), `${r.loss} vs ${expected}`);
    // The away loss is the mean of the cross-entropies toward the other classes, so its gradient is
    // the mean of their gradients (the cross-entropy rule is checked against PyTorch elsewhere).
    const ce = await GradientSession.create(runtime, model, { loss: { kind: 'target-cross-entropy' }, weighted: true, wrt: ['input'] });
    const mean = new Float64Array(xs.length);
    for (let k = 1; k < 10; k++) {
      const others = BigInt64Array.from(ys, (y) => (y + BigInt(k)) % 10n);
      const g = (await ce.run({ inputs: { input: { dtype: 'float32', dims: [count, 1, 28, 28], data: xs } }, labels: others, weights })).grads.input;
      g.forEach((v, j) => (mean[j] += v / 9));
    }
    assert.ok(maxRelativeError(r.grads.input, Float32Array.from(mean)) < 1e-4, `relative error ${maxRelativeError(r.grads.input, Float32Array.from(mean))}`);
  });

  test('the soft cross-entropy is linear in its soft labels: one-hot rows give the cross-entropy, mixtures mix it', async () => {
    const soft = await GradientSession.create(runtime, model, { loss: { kind: 'soft-cross-entropy' }, wrt: ['input', 'fc.weight'] });
    const ce = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, wrt: ['input', 'fc.weight'] });
    const onehot = (ys: BigInt64Array, a: number) => Float32Array.from({ length: n * 10 }, (_, k) => (BigInt(k % 10) === ys[Math.floor(k / 10)] ? a : 0));
    const shifted = BigInt64Array.from(labels, (y) => (y + 3n) % 10n);
    const a = await soft.run({ inputs: { input: x }, labels, softLabels: onehot(labels, 1) });
    const b = await ce.run({ inputs: { input: x }, labels });
    assert.ok(Math.abs(a.loss - b.loss) < 1e-5 * Math.max(1, b.loss), `${a.loss} vs ${b.loss}`);
    assert.ok(maxRelativeError(a.grads.input, b.grads.input) < 1e-4);
    assert.ok(maxRelativeError(a.grads['fc.weight'], b.grads['fc.weight']) < 1e-4);
    // q = 0.3·onehot(y) + 0.7·onehot(y + 3): loss and gradients are 0.3·CE(y) + 0.7·CE(y + 3).
    const q = onehot(labels, 0.3).map((v, k) => v + onehot(shifted, 0.7)[k]);
    const mixed = await soft.run({ inputs: { input: x }, labels, softLabels: q });
    const c = await ce.run({ inputs: { input: x }, labels: shifted });
    assert.ok(Math.abs(mixed.loss - (0.3 * b.loss + 0.7 * c.loss)) < 1e-4 * Math.max(1, mixed.loss));
    const expected = b.grads.input.map((v, k) => 0.3 * v + 0.7 * c.grads.input[k]);
    assert.ok(maxRelativeError(mixed.grads.input, expected) < 1e-3, `relative error ${maxRelativeError(mixed.grads.input, expected)}`);
    await assert.rejects(soft.run({ inputs: { input: x }, labels }), (e: unknown) => e instanceof BackdoorLensError && e.code === 'usage');
    await assert.rejects(ce.run({ inputs: { input: x }, labels, softLabels: q }), /only fed to a graph built with the soft-cross-entropy loss/);
  });

  test('weights are required exactly when the graph is weighted', async () => {
    const weighted = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, weighted: true, wrt: ['input'] });
    await assert.rejects(weighted.run({ inputs: { input: x }, labels }), (e: unknown) => e instanceof BackdoorLensError && e.code === 'usage');
    await assert.rejects(weighted.run({ inputs: { input: x }, labels, weights: new Float32Array(n + 1) }), /weights for/);
    const plain = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, wrt: ['input'] });
    await assert.rejects(plain.run({ inputs: { input: x }, labels, weights: new Float32Array(n) }), (e: unknown) => e instanceof BackdoorLensError && e.code === 'usage');
  });

  test('a promoted initializer is fed its stored value unless overridden', async () => {
    const session = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, wrt: ['fc.weight'], fetch: ['logits'] });
    const stored = await session.run({ inputs: { input: x }, labels });
    const reference = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, wrt: ['input'] });
    const referenceLoss = (await reference.run({ inputs: { input: x }, labels })).loss;
    assert.ok(Math.abs(stored.loss - referenceLoss) < 1e-5 * referenceLoss, `${stored.loss} vs ${referenceLoss}`);
    assert.deepEqual(stored.grads['fc.weight'].length, 10 * 64 * 7 * 7);
    // With zero weights the logits are the bias, so the loss is the mean CE of the bias alone.
    const bias = model.initializer('fc.bias')!.data as Float32Array;
    const zeroed = await session.run({ inputs: { input: x, 'fc.weight': floatTensor([10, 64 * 7 * 7]) }, labels });
    const logSumExp = Math.log(bias.reduce((s, b) => s + Math.exp(b), 0));
    const expected = Array.from(labels, (l) => logSumExp - bias[Number(l)]).reduce((a, b) => a + b, 0) / n;
    assert.ok(Math.abs(zeroed.loss - expected) < 1e-5, `${zeroed.loss} vs ${expected}`);
    assert.deepEqual(Array.from(zeroed.fetched.logits.data as Float32Array).slice(0, 10).map((v) => v.toFixed(5)), Array.from(bias).map((v) => v.toFixed(5)));
  });

  test('intermediate tensors can be fetched alongside the gradients', async () => {
    const session = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, wrt: ['input'], fetch: ['/relu/Relu_output_0', 'logits', 'input'] });
    const r = await session.run({ inputs: { input: x }, labels });
    assert.deepEqual(r.fetched['/relu/Relu_output_0'].dims, [n, 16, 28, 28]);
    assert.deepEqual(r.fetched.logits.dims, [n, 10]);
    assert.deepEqual(Array.from(r.fetched.input.data as Float32Array), Array.from(x.data as Float32Array));
  });
});

describe('gradient graph structure', () => {
  test('the backward pass only covers paths to the requested tensors', () => {
    // Not counted: depthwise 1×1 Convs that scale masks, and the strided ones with which the 2×2 pools' routes read one element per window.
    const maskHelper = (node: NodeProto) => attrInt(node, 'group', 1) > 1 && ((attrInts(node, 'strides') ?? []).some((s) => s > 1) || (attrInts(node, 'kernel_shape') ?? []).every((k) => k === 1));
    const convs = (m: OnnxModel) => m.nodes.filter((node) => (node.op_type === 'Conv' || node.op_type === 'ConvTranspose') && !maskHelper(node)).length;
    const toInput = buildGradientGraph(model, { loss: { kind: 'cross-entropy' }, wrt: ['input'] });
    assert.equal(convs(toInput.model), 6, 'three forward convs and three input-gradient convs');
    const affine = insertChannelAffine(model, '/conv3/Conv');
    const toLastLayer = buildGradientGraph(affine.model, { loss: { kind: 'cross-entropy' }, wrt: [affine.scaleInput] });
    assert.equal(convs(toLastLayer.model), 3, 'no backward convs below the last conv layer');
  });

  test('outputs are the loss, the gradients, then the fetched tensors; a wrt tensor off the loss path gets zeros', async () => {
    const b = new GraphBuilder('two', 13);
    const a = b.input('a', 'float32', ['N', 2]);
    const unused = b.input('unused', 'float32', ['N', 3]);
    b.node('Gemm', [a, b.constantFloat([1, 0, 0, 1, 1, 1], [3, 2])], { transB: 1 }, { outputs: ['logits'] });
    b.node('Relu', [unused], {}, { outputs: ['side'] });
    b.output('logits', 'float32', ['N', 3]);
    b.output('side', 'float32', ['N', 3]);
    const graph = buildGradientGraph(b.build('two.onnx'), { loss: { kind: 'cross-entropy' }, wrt: ['a', 'unused'], fetch: ['side'] });
    assert.deepEqual(graph.model.outputs().map((o) => o.name), [graph.lossOutput, graph.gradOutputs.get('a'), graph.gradOutputs.get('unused'), graph.fetchOutputs.get('side')]);
    const session = await GradientSession.create(runtime, b.build('two.onnx'), { loss: { kind: 'cross-entropy' }, wrt: ['a', 'unused'] });
    const r = await session.run({ inputs: { a: floatTensor([2, 2], Float32Array.of(1, 2, 3, 4)), unused: floatTensor([2, 3], Float32Array.of(1, 2, 3, 4, 5, 6)) }, labels: Int32Array.of(0, 2) });
    assert.deepEqual(Array.from(r.grads.unused), [0, 0, 0, 0, 0, 0]);
    // logits = [a0, a1, a0 + a1]; dCE/dz = (softmax − onehot)/N, dz/da = [[1,0],[0,1],[1,1]].
    const softmax = (z: number[]) => z.map((v) => Math.exp(v) / z.reduce((s, w) => s + Math.exp(w), 0));
    const expected = [[1, 2], [3, 4]].flatMap(([a0, a1], i) => {
      const p = softmax([a0, a1, a0 + a1]).map((v, k) => (v - (k === [0, 2][i] ? 1 : 0)) / 2);
      return [p[0] + p[2], p[1] + p[2]];
    });
    assert.ok(maxRelativeError(r.grads.a, expected) < 1e-5, `${Array.from(r.grads.a)} vs ${expected}`);
  });
});

describe('initializer aliases', () => {
  test('an Identity-deduplicated parameter can be differentiated on its own', async () => {
    // x·s1 + x·s2 with s2 = Identity(s1), as torch exports two equal parameters.
    const b = new GraphBuilder('alias', 13);
    const x = b.input('x', 'float32', ['N', 3]);
    const s1 = b.constantFloat([1, 2, 3], [3], 'first.weight');
    b.node('Identity', [s1], {}, { outputs: ['second.weight'] });
    const y = b.op('Add', [b.op('Mul', [x, s1]), b.op('Mul', [b.op('Relu', [x]), 'second.weight'])]);
    b.node('Identity', [y], {}, { outputs: ['logits'] });
    b.output('logits', 'float32', ['N', 3]);
    const model = b.build('alias.onnx');
    const session = await GradientSession.create(runtime, model, { loss: { kind: 'cross-entropy' }, wrt: ['first.weight', 'second.weight'] });
    const input = Float32Array.of(0.5, -1, 2);
    const r = await session.run({ inputs: { x: floatTensor([1, 3], input) }, labels: Int32Array.of(1) });
    const z = [0.5 * 1 + 0.5 * 1, -1 * 2 + 0, 2 * 3 + 2 * 3];
    const p = z.map((v) => Math.exp(v) / z.reduce((s, w) => s + Math.exp(w), 0)).map((v, k) => v - (k === 1 ? 1 : 0));
    assert.ok(maxRelativeError(r.grads['first.weight'], p.map((v, k) => v * input[k])) < 1e-5);
    assert.ok(maxRelativeError(r.grads['second.weight'], p.map((v, k) => v * Math.max(0, input[k]))) < 1e-5);
  });
});
