/**
 * The masks built from affine maps (engine/autodiff/rules/indicator.ts) must equal the
 * comparisons they replace bit for bit, on the values where a scaled test could go wrong:
 * zeros of both signs, the smallest subnormals, neighbours one ulp apart, ties, huge values.
 * A 16-channel identity 1×1 Conv in front puts the tensors in ONNX Runtime's blocked layout,
 * as in a real network; the expected gradients are worked out from the values ONNX Runtime
 * actually produced, and upstream gradients are small integers, so everything compares exactly.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { buildVjpGraph } from '../../engine/autodiff';
import { GraphBuilder } from '../../engine/graph/builder';
import { Runtime } from '../../engine/runtime';
import { floatTensor, type Tensor } from '../../engine/tensor';
import { mulberry32 } from '../../engine/analyses/stats/random';
import { floats } from './helpers';

const runtime = new Runtime({ threads: 1 });
after(() => runtime.dispose());

const CHANNELS = 16;
const SIDE = 4;

function nextUp(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer);
  if (v === 0) u[0] = 1;
  else u[0] += v > 0 ? 1 : -1;
  return f[0];
}

const tiny = 2 ** -149;
const big = 1e30;
/** Windows in PyTorch's scan order a, b, c, d. */
const windows: number[][] = [
  [0, 0, 0, 0],
  [-0, 0, -0, 0],
  [1.5, 1.5, 1.5, 1.5],
  [1, nextUp(1), 1, nextUp(1)],
  [tiny, 2 * tiny, 2 * tiny, tiny],
  [0, 0, tiny, 0],
  [0, 0, 0, tiny],
  [2 ** -126, nextUp(2 ** -126), nextUp(2 ** -126), 0],
  [-1, -1, -2, -1],
  [-3, -2, -2, -5],
  [big, nextUp(big), nextUp(big), big],
  [3e38, 3e38, 1, 2],
  [0.25, 0.5, 0.75, 1],
  [1, 0.75, 0.5, 0.25],
  [0.5, 0.25, 0.75, 0.75],
  [0.5, 0.25, 0.25, 0.75],
];

/** x [N, 16, 4, 4]: every channel plane holds four of the windows above, shuffled per plane. */
function inputs(batch: number): Float32Array {
  const random = mulberry32(7);
  const data = new Float32Array(batch * CHANNELS * SIDE * SIDE);
  for (let plane = 0; plane < batch * CHANNELS; plane++) {
    for (let w = 0; w < 4; w++) {
      const values = windows[Math.floor(random() * windows.length)];
      const [wr, wc] = [Math.floor(w / 2), w % 2];
      values.forEach((v, k) => {
        data[plane * SIDE * SIDE + (2 * wr + Math.floor(k / 2)) * SIDE + 2 * wc + (k % 2)] = v;
      });
    }
  }
  return data;
}

/** x → identity 1×1 Conv (16 channels) → [Relu] → MaxPool 2×2 → pooled; c is the Conv output. */
function poolModel(relu: boolean) {
  const b = new GraphBuilder('masks', 13);
  const x = b.input('x', 'float32', ['N', CHANNELS, SIDE, SIDE]);
  const identity = Array.from({ length: CHANNELS * CHANNELS }, (_, i) => (Math.floor(i / CHANNELS) === i % CHANNELS ? 1 : 0));
  b.node('Conv', [x, b.constantFloat(identity, [CHANNELS, CHANNELS, 1, 1], 'identity')], {}, { outputs: ['c'] });
  const r = relu ? b.op('Relu', ['c']) : 'c';
  b.node('MaxPool', [r], { kernel_shape: [2, 2], strides: [2, 2] }, { outputs: ['pooled'] });
  b.output('pooled', 'float32', ['N', CHANNELS, 2, 2]);
  return b.build(relu ? 'relu-pool.onnx' : 'pool.onnx');
}

async function run(relu: boolean, batch: number) {
  const graph = buildVjpGraph(poolModel(relu), { wrt: ['x'], outputs: ['pooled', 'c'] });
  const upstream = Float32Array.from({ length: batch * CHANNELS * 4 }, (_, i) => 1 + (i % 7));
  const feeds: Record<string, Tensor> = { x: floatTensor([batch, CHANNELS, SIDE, SIDE], inputs(batch)) };
  for (const [name, value] of graph.defaults) feeds[name] = value;
  feeds[graph.seedInputs.get('pooled')!] = floatTensor([batch, CHANNELS, 2, 2], upstream);
  feeds[graph.seedInputs.get('c')!] = floatTensor([batch, CHANNELS, SIDE, SIDE]);
  const session = await runtime.session(graph.model);
  const out = await session.run(feeds);
  return { c: floats(out[graph.fetchOutputs.get('c')!], 'c'), dx: floats(out[graph.gradOutputs.get('x')!], 'dx'), upstream };
}

/** PyTorch's rule: the first maximum in scan order gets the gradient; through a Relu only if it is positive. */
function expected(c: Float32Array, upstream: Float32Array, relu: boolean): Float32Array {
  const dx = new Float32Array(c.length);
  for (let plane = 0; plane < c.length / (SIDE * SIDE); plane++) {
    for (let w = 0; w < 4; w++) {
      const [wr, wc] = [Math.floor(w / 2), w % 2];
      const at = (k: number) => plane * SIDE * SIDE + (2 * wr + Math.floor(k / 2)) * SIDE + 2 * wc + (k % 2);
      const value = (k: number) => (relu ? Math.max(0, c[at(k)]) : c[at(k)]);
      let first = 0;
      for (let k = 1; k < 4; k++) if (value(k) > value(first)) first = k;
      if (!relu || c[at(first)] > 0) dx[at(first)] = upstream[plane * 4 + w];
    }
  }
  return dx;
}

describe('exact masks in the blocked layout', () => {
  for (const relu of [false, true]) {
    test(`2×2 MaxPool${relu ? ' after a Relu' : ''} routes to the first maximum on ties, subnormals and one-ulp gaps`, async () => {
      const { c, dx, upstream } = await run(relu, 8);
      const want = expected(c, upstream, relu);
      const wrong = want.findIndex((v, i) => !Object.is(v + 0, dx[i] + 0));
      assert.equal(wrong, -1, wrong < 0 ? '' : `element ${wrong}: got ${dx[wrong]}, expected ${want[wrong]} (window values around ${c[wrong]})`);
    });
  }

  test('a Relu absorbed into a one-dimensional MaxPool keeps a mask of the right rank', async () => {
    const b = new GraphBuilder('relu-pool-1d', 13);
    const x = b.input('x', 'float32', ['N', CHANNELS, 8]);
    b.node('MaxPool', [b.op('Relu', [x])], { kernel_shape: [2], strides: [2] }, { outputs: ['pooled'] });
    b.output('pooled', 'float32', ['N', CHANNELS, 4]);
    const graph = buildVjpGraph(b.build('relu-pool-1d.onnx'), { wrt: ['x'], outputs: ['pooled'] });
    const values = [0, -0, tiny, 1, 1, -2, 0.5, 0.25];
    const data = Float32Array.from({ length: 2 * CHANNELS * 8 }, (_, i) => values[(i * 3 + Math.floor(i / 8)) % values.length]);
    const feeds: Record<string, Tensor> = { x: floatTensor([2, CHANNELS, 8], data) };
    for (const [name, value] of graph.defaults) feeds[name] = value;
    feeds[graph.seedInputs.get('pooled')!] = floatTensor([2, CHANNELS, 4], new Float32Array(2 * CHANNELS * 4).fill(5));
    const dx = floats((await (await runtime.session(graph.model)).run(feeds))[graph.gradOutputs.get('x')!], 'dx');
    for (let w = 0; w < data.length / 2; w++) {
      const [p, q] = [Math.max(0, data[2 * w]), Math.max(0, data[2 * w + 1])];
      const first = q > p ? 1 : 0;
      const want = [0, 0];
      if (Math.max(p, q) > 0) want[first] = 5;
      assert.deepEqual([dx[2 * w], dx[2 * w + 1]], want, `window ${w}: ${data[2 * w]}, ${data[2 * w + 1]}`);
    }
  });

  test('a Relu mask is [y > 0] for zeros of both signs, subnormals and the largest floats', async () => {
    const b = new GraphBuilder('relu-mask', 13);
    const x = b.input('x', 'float32', ['N', CHANNELS, SIDE, SIDE]);
    const identity = Array.from({ length: CHANNELS * CHANNELS }, (_, i) => (Math.floor(i / CHANNELS) === i % CHANNELS ? 1 : 0));
    b.node('Conv', [x, b.constantFloat(identity, [CHANNELS, CHANNELS, 1, 1], 'identity')], {}, { outputs: ['c'] });
    b.node('Relu', ['c'], {}, { outputs: ['r'] });
    b.output('r', 'float32', ['N', CHANNELS, SIDE, SIDE]);
    const graph = buildVjpGraph(b.build('relu-mask.onnx'), { wrt: ['x'], outputs: ['r', 'c'] });
    const values = [0, -0, tiny, -tiny, 2 * tiny, 2 ** -126, 1, -1, 3e38, -3e38, nextUp(0), 1e-38, 5e-39, 0.5, -0.5, 7];
    const data = Float32Array.from({ length: 2 * CHANNELS * SIDE * SIDE }, (_, i) => values[(i * 5 + Math.floor(i / 16)) % values.length]);
    const feeds: Record<string, Tensor> = { x: floatTensor([2, CHANNELS, SIDE, SIDE], data) };
    for (const [name, value] of graph.defaults) feeds[name] = value;
    feeds[graph.seedInputs.get('r')!] = floatTensor([2, CHANNELS, SIDE, SIDE], new Float32Array(data.length).fill(3));
    feeds[graph.seedInputs.get('c')!] = floatTensor([2, CHANNELS, SIDE, SIDE]);
    const out = await (await runtime.session(graph.model)).run(feeds);
    const c = floats(out[graph.fetchOutputs.get('c')!], 'c');
    const dx = floats(out[graph.gradOutputs.get('x')!], 'dx');
    c.forEach((v, i) => assert.equal(dx[i], v > 0 ? 3 : 0, `element ${i}: c = ${v}, gradient ${dx[i]}`));
  });
});
