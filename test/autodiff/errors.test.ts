/** The gradient builder refuses what it cannot differentiate, naming the op, the node and the model. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildGradientGraph } from '../../engine/autodiff';
import { BackdoorLensError } from '../../engine/errors';
import { GraphBuilder } from '../../engine/graph/builder';
import type { OnnxModel } from '../../engine/graph/model';

/** x [N,4] → (op under test) → Gemm → logits [N,3]; `side` adds a branch that does not reach the logits. */
function tinyModel(options: { op?: string; attrs?: Record<string, number | string>; opset?: number; domain?: string; onBias?: boolean } = {}): OnnxModel {
  const b = new GraphBuilder('tiny', options.opset ?? 13);
  const x = b.input('x', 'float32', ['N', 4]);
  const w = b.constantFloat(Array.from({ length: 12 }, (_, i) => (i % 5) / 5 - 0.4), [3, 4], 'fc.weight');
  let bias = b.constantFloat([0.1, -0.2, 0.3], [3], 'fc.bias');
  let h = x;
  if (options.op && options.onBias) bias = b.node(options.op, [bias], options.attrs ?? {}, { name: 'bias_transform' })[0];
  else if (options.op) h = b.node(options.op, [x], options.attrs ?? {}, { name: 'the_node', ...(options.domain ? { domain: options.domain } : {}) })[0];
  b.node('Gemm', [h, w, bias], { transB: 1 }, { outputs: ['logits'] });
  b.output('logits', 'float32', ['N', 3]);
  return b.build('tiny.onnx');
}

function expectUnsupported(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BackdoorLensError, `expected a BackdoorLensError, got ${String(e)}`);
    assert.equal(e.code, 'unsupported-model');
    for (const f of fragments) assert.ok(e.message.includes(f), `'${e.message}' should mention '${f}'`);
    return true;
  });
}

const ce = { loss: { kind: 'cross-entropy' as const }, wrt: ['x'] };

describe('unsupported models', () => {
  test('an op without a gradient rule on the gradient path names the op, the node and the model', () => {
    expectUnsupported(() => buildGradientGraph(tinyModel({ op: 'Trilu' }), ce), 'Trilu', "'the_node'", 'tiny.onnx', 'no gradient rule');
  });

  test('an op the builder does not know at all is refused even before differentiation', () => {
    expectUnsupported(() => buildGradientGraph(tinyModel({ op: 'LpNormalization', attrs: { axis: 1 } }), ce), 'LpNormalization', "'the_node'", 'tiny.onnx');
  });

  test('the same op off the gradient path (on a constant) is fine', () => {
    const graph = buildGradientGraph(tinyModel({ op: 'Trilu', onBias: true }), ce);
    assert.ok(graph.gradOutputs.has('x'));
  });

  test('a supported op with an unsupported attribute is refused with the reason', () => {
    const b = new GraphBuilder('pad', 13);
    const x = b.input('x', 'float32', ['N', 4]);
    const padded = b.node('Pad', [x, b.constantInt64([0, 1, 0, 1])], { mode: 'reflect' }, { name: 'reflect_pad' })[0];
    b.node('Gemm', [padded, b.constantFloat(new Array(18).fill(0.1), [3, 6])], { transB: 1 }, { outputs: ['logits'] });
    b.output('logits', 'float32', ['N', 3]);
    expectUnsupported(() => buildGradientGraph(b.build('pad.onnx'), ce), 'Pad', "'reflect_pad'", 'reflect', 'pad.onnx');
  });

  test('ops of other domains are refused', () => {
    expectUnsupported(() => buildGradientGraph(tinyModel({ op: 'FusedGemm', domain: 'com.microsoft' }), ce), 'FusedGemm', 'com.microsoft');
  });

  test('models older than opset 11 are refused with what to do', () => {
    expectUnsupported(() => buildGradientGraph(tinyModel({ opset: 9 }), ce), 'opset 9', 'opset_version 11');
  });

  test('a wrt name that is neither input nor initializer is refused', () => {
    expectUnsupported(() => buildGradientGraph(tinyModel(), { ...ce, wrt: ['nope'] }), "'nope'", 'neither a graph input nor an initializer');
  });

  test('logits must be [N, K]', () => {
    const b = new GraphBuilder('flat', 13);
    const x = b.input('x', 'float32', ['N', 4]);
    b.node('Identity', [x], {}, { outputs: ['scores'] });
    b.node('ReduceSum', [x], { keepdims: 0 }, { outputs: ['total'] });
    b.output('scores', 'float32', ['N', 4]);
    b.output('total', 'float32', []);
    expectUnsupported(() => buildGradientGraph(b.build('flat.onnx'), { ...ce, logits: 'total' }), "'total'", '[N, K]');
  });
});
