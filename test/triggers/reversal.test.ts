import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dataset } from '../../engine/data/types';
import { SeededRandom } from '../../engine/analyses/stats/random';
import { advanceTasks, type BatchGradient } from '../../engine/analyses/reversal/batch';
import { PatchObjective, PerturbationObjective, WarpObjective, type Objective, type SampleGeometry } from '../../engine/analyses/reversal/objectives';
import { stampTrigger } from '../../engine/analyses/reversal/trigger';
import { makeTask } from '../../engine/analyses/reversal/run';
import { ReversalTask, patchSchedule } from '../../engine/analyses/reversal/task';

const geometry: SampleGeometry = { channels: 2, height: 3, width: 4, layout: 'NCHW', range: { min: [0, -1], max: [1, 2] } };
const n = 24;

/** ∂L/∂params by central differences, for L = Σ_j w_j·x'_j. */
function numeric(obj: Objective, x: Float32Array, w: Float32Array, size = n): Float64Array {
  const loss = () => {
    const out = new Float32Array(size);
    obj.compose(x, 0, out, 0);
    return out.reduce((s, v, j) => s + v * w[j], 0);
  };
  return Float64Array.from(obj.params, (_, i) => {
    const h = 1e-3, keep = obj.params[i];
    obj.params[i] = keep + h;
    obj.refresh();
    const up = loss();
    obj.params[i] = keep - h;
    obj.refresh();
    const down = loss();
    obj.params[i] = keep;
    obj.refresh();
    return (up - down) / (2 * h);
  });
}

test('patch objective: x′ = (1−m)x + mP and its chain rule agree with finite differences', () => {
  const rng = new SeededRandom(3);
  const obj = new PatchObjective(geometry, () => rng.next());
  const x = Float32Array.from({ length: n }, () => rng.next());
  const w = Float32Array.from({ length: n }, () => rng.next() - 0.5);
  const grad = new Float64Array(obj.params.length);
  obj.backward(x, 0, w, 0, grad);
  const fd = numeric(obj, x, w);
  grad.forEach((g, i) => assert.ok(Math.abs(g - fd[i]) < 2e-3, `param ${i}: ${g} vs ${fd[i]}`));
  const trig = obj.toTrigger(1, [0]);
  assert.equal(trig.mask!.length, 12);
  assert.ok(trig.pattern!.slice(12).every((v) => v >= -1 && v <= 2), 'pattern of channel 1 in its range');
});

test('perturbation objective: clamped x + v; no gradient through a clamped value', () => {
  const rng = new SeededRandom(4);
  const obj = new PerturbationObjective(geometry);
  obj.params.forEach((_, i) => (obj.params[i] = (rng.next() - 0.5) * 0.4));
  obj.params[0] = 5; // pushes value 0 beyond its range
  const x = Float32Array.from({ length: n }, () => 0.2 + 0.5 * rng.next());
  const w = Float32Array.from({ length: n }, () => rng.next() - 0.5);
  const grad = new Float64Array(n);
  obj.backward(x, 0, w, 0, grad);
  assert.equal(grad[0], 0);
  const fd = numeric(obj, x, w);
  grad.forEach((g, i) => assert.ok(Math.abs(g - fd[i]) < 1e-3, `param ${i}`));
  const penalty = new Float64Array(n);
  obj.addPenaltyGradient(0.5, penalty);
  assert.ok(Math.abs(penalty[3] - obj.params[3]) < 1e-12, 'λ·∂‖v‖²/∂v = 2λv');
});

test('warp objective: zero field is the identity; bilinear resampling and its chain rule agree with finite differences', () => {
  const rng = new SeededRandom(6);
  for (const layout of ['NCHW', 'NHWC'] as const) {
    const g: SampleGeometry = { channels: 3, height: 9, width: 7, layout, range: { min: [0, 0, 0], max: [1, 1, 1] } };
    const size = 3 * 9 * 7;
    const obj = new WarpObjective(g, 4);
    const x = Float32Array.from({ length: size }, () => rng.next());
    const out = new Float32Array(size);
    obj.refresh();
    obj.compose(x, 0, out, 0);
    assert.deepEqual(out, x, 'no displacement, no change');
    assert.equal(obj.norm(), 0);
    // Displacements of up to ±0.9 px keep every sample position inside the image or clamped
    // away from a grid line, where the bilinear map is differentiable.
    obj.params.forEach((_, i) => (obj.params[i] = (rng.next() - 0.5) * 1.8));
    obj.refresh();
    const w = Float32Array.from({ length: size }, () => rng.next() - 0.5);
    const grad = new Float64Array(obj.params.length);
    obj.backward(x, 0, w, 0, grad);
    const fd = numeric(obj, x, w, size);
    grad.forEach((v, i) => assert.ok(Math.abs(v - fd[i]) < 2e-3, `${layout} param ${i}: ${v} vs ${fd[i]}`));
    const penalty = new Float64Array(obj.params.length);
    obj.addPenaltyGradient(1, penalty);
    const h = 1e-4, keep = obj.params[5];
    const sq = () => (obj.refresh(), obj.norm() ** 2);
    obj.params[5] = keep + h;
    const up = sq();
    obj.params[5] = keep - h;
    const down = sq();
    obj.params[5] = keep;
    obj.refresh();
    assert.ok(Math.abs(penalty[5] - (up - down) / (2 * h)) < 1e-4, 'λ·∂‖d‖²/∂params');
  }
});

test('warp trigger: a whole-pixel shift moves the image by one pixel, stamped as the objective composes it', () => {
  const g: SampleGeometry = { channels: 1, height: 5, width: 6, layout: 'NCHW', range: { min: [0], max: [1] } };
  const obj = new WarpObjective(g, 3);
  obj.params.fill(0);
  obj.params.fill(1, 9); // dx = +1 everywhere: each pixel reads its right neighbour
  obj.refresh();
  const x = Float32Array.from({ length: 30 }, (_, j) => j);
  const out = new Float32Array(30);
  obj.compose(x, 0, out, 0);
  for (let i = 0; i < 5; i++) for (let j = 0; j < 6; j++) assert.equal(out[i * 6 + j], x[i * 6 + Math.min(j + 1, 5)]);
  const trigger = obj.toTrigger(2, [0]);
  assert.equal(trigger.kind, 'warp');
  const data = { source: 't', n: 1, x, dims: [1, 1, 5, 6], labels: Int32Array.of(0), preprocess: { layout: 'NCHW', channels: 1, height: 5, width: 6, scale: 1, mean: [0], std: [1], resized: false, sourceLayout: 'NCHW' } } as unknown as Dataset;
  assert.deepEqual(stampTrigger(trigger, data).x, out);
});

/** Steps a task with the given successes; the network's gradient exactly cancels the size penalty, so the trigger stays put. */
function task(successes: boolean[]) {
  const rng = new SeededRandom(5);
  const t = new ReversalTask(0, 1, [0, 1, 2, 3], new PatchObjective(geometry, () => 0.1 * rng.next()), { ...patchSchedule, maxSteps: successes.length + 1 }, 1);
  const lambdas: number[] = [];
  for (const ok of successes) {
    if (!t.running) break;
    const balance = new Float64Array(t.objective.params.length);
    t.objective.addPenaltyGradient(-t.lambda, balance);
    t.update(balance, ok ? 1 : 0);
    lambdas.push(t.lambda);
  }
  return { t, lambdas };
}

test("Neural Cleanse's λ schedule: set after 5 successes, ×1.5 after 5 more, ÷1.5^1.5 after 5 failures", () => {
  const { lambdas } = task([...Array(10).fill(true), ...Array(5).fill(false)]);
  assert.deepEqual(lambdas.slice(0, 4), [0, 0, 0, 0]);
  assert.equal(lambdas[4], patchSchedule.initCost);
  assert.ok(Math.abs(lambdas[9] - patchSchedule.initCost * 1.5) < 1e-12);
  assert.ok(Math.abs(lambdas[14] - (patchSchedule.initCost * 1.5) / 1.5 ** 1.5) < 1e-12);
});

test('a task keeps its smallest successful trigger and stops once λ moved both ways and the best stalled', () => {
  const pattern = [...Array(10).fill(true), ...Array(5).fill(false), ...Array(40).fill(true)];
  const { t } = task(pattern);
  assert.ok(t.succeeded && Number.isFinite(t.bestNorm));
  assert.equal(t.status, 'converged');
  assert.ok(t.step < pattern.length);
  assert.equal(t.sizeAt(t.step), t.size);
  assert.throws(() => t.sizeAt(t.step + 1));
});

test('a task advanced alone or batched with others follows the same trajectory', async () => {
  const C = 3;
  // A fixed linear softmax model: logits = W·x; exact gradients of Σ w_i·CE_i.
  const rng = new SeededRandom(9);
  const W = Float32Array.from({ length: C * n }, () => rng.next() - 0.5);
  const gradient: BatchGradient = async ({ x, labels, weights }) => {
    const N = labels.length, dx = new Float32Array(x.length), logits = new Float32Array(N * C);
    for (let i = 0; i < N; i++) {
      for (let c = 0; c < C; c++) for (let j = 0; j < n; j++) logits[i * C + c] += W[c * n + j] * x[i * n + j];
      const max = Math.max(...logits.subarray(i * C, i * C + C));
      const e = Array.from(logits.subarray(i * C, i * C + C), (v) => Math.exp(v - max));
      const z = e.reduce((a, b) => a + b, 0);
      for (let c = 0; c < C; c++) {
        const d = weights[i] * (e[c] / z - (c === labels[i] ? 1 : 0));
        for (let j = 0; j < n; j++) dx[i * n + j] += d * W[c * n + j];
      }
    }
    return { dx, logits };
  };
  const data = { x: Float32Array.from({ length: 10 * n }, () => rng.next()), n: 10, dims: [10, 2, 3, 4] } as unknown as Dataset;
  const schedule = { ...patchSchedule, batchSize: 3 };
  const alone = makeTask(7, 'patch', 2, [0, 1, 2, 3, 4], geometry, schedule, 11);
  const together = makeTask(7, 'patch', 2, [0, 1, 2, 3, 4], geometry, schedule, 11);
  const other = makeTask(8, 'patch', 0, [5, 6, 7, 8, 9], geometry, schedule, 11);
  for (let s = 0; s < 12; s++) {
    await advanceTasks([alone], data, gradient, 512);
    const stats = await advanceTasks([other, together], data, gradient, 4);
    assert.equal(stats.calls, 2, 'batches are split between tasks, never inside one');
  }
  assert.deepEqual(Array.from(together.objective.params), Array.from(alone.objective.params));
  assert.deepEqual(together.history, alone.history);
});
