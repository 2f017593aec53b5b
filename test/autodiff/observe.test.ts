/**
 * Shapes static inference cannot derive are measured with ONNX Runtime: a classifier whose
 * flatten size is computed at run time (ReduceProd of the shape, which the shape folder does
 * not evaluate) and whose declared output leaves the class count open still gets its gradient,
 * equal to that of the same network with a constant flatten.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { buildGradientGraph, GradientSession } from '../../engine/autodiff';
import { observeShapes } from '../../engine/autodiff/observe';
import { GraphBuilder } from '../../engine/graph/builder';
import type { OnnxModel } from '../../engine/graph/model';
import { inferShapes } from '../../engine/graph/shapes';
import { Runtime } from '../../engine/runtime';
import type { Tensor } from '../../engine/tensor';
import { maxRelativeError, randomNormals } from './helpers';

const classes = 4;
const weights = Array.from(randomNormals(classes * 18, 3), (v) => v * 0.3);

/** Relu → flatten → Gemm; the flatten target is [batch, prod(shape[1:])] computed in the graph, or constant. */
function classifier(computedFlatten: boolean): OnnxModel {
  const b = new GraphBuilder('flatten', 13);
  const x = b.input('x', 'float32', ['N', 2, 3, 3]);
  const r = b.op('Relu', [x]);
  let target: string;
  if (computedFlatten) {
    const shape = b.op('Shape', [r]);
    const head = b.op('Slice', [shape, b.constantInt64([0]), b.constantInt64([1])]);
    const tail = b.op('ReduceProd', [b.op('Slice', [shape, b.constantInt64([1]), b.constantInt64([4])])], { axes: [0], keepdims: 1 });
    target = b.op('Concat', [head, tail], { axis: 0 });
  } else {
    target = b.constantInt64([0, 18]);
  }
  const flat = b.op('Reshape', [r, target]);
  b.node('Gemm', [flat, b.constantFloat(weights, [classes, 18])], { transB: 1 }, { outputs: ['logits'] });
  b.output('logits', 'float32', ['N', 'K']);
  return b.build(computedFlatten ? 'computed-flatten.onnx' : 'constant-flatten.onnx');
}

const runtime = new Runtime({ threads: 1 });
after(() => runtime.dispose());

describe('shapes measured with ONNX Runtime when static inference cannot tell', () => {
  test('static inference leaves the flatten and the class count unknown', () => {
    const model = classifier(true);
    const logits = inferShapes(model).shapes.get('logits');
    assert.ok(!logits || logits.includes('?'), `logits shape ${logits}`);
    assert.throws(() => buildGradientGraph(model, { loss: { kind: 'cross-entropy' }, wrt: ['x'] }), /static class count|not known statically/);
  });

  test('observeShapes measures the unknown tensors with the batch kept symbolic', async () => {
    const observed = await observeShapes(runtime, classifier(true));
    assert.deepEqual(observed.get('logits'), ['N', classes]);
    const flat = [...observed].find(([name]) => name.startsWith('Reshape'));
    assert.deepEqual(flat?.[1], ['N', 18]);
  });

  test('the gradient session builds with measured shapes and matches the constant-flatten model', async () => {
    const n = 3;
    const x: Tensor = { dtype: 'float32', dims: [n, 2, 3, 3], data: Float32Array.from(randomNormals(n * 18, 11)) };
    const labels = Int32Array.of(0, 3, 1);
    const results = [];
    for (const computed of [true, false]) {
      const session = await GradientSession.create(runtime, classifier(computed), { loss: { kind: 'cross-entropy' }, wrt: ['x'] });
      results.push(await session.run({ inputs: { x }, labels }));
    }
    const [measured, reference] = results;
    assert.ok(Math.abs(measured.loss - reference.loss) < 1e-6, `loss ${measured.loss} vs ${reference.loss}`);
    assert.ok(maxRelativeError(measured.grads.x, reference.grads.x) < 1e-6);
    assert.ok(measured.grads.x.some((v) => v !== 0));
  });
});
