import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyTransform, binsFor, defaultFitOptions, momentTransform, fitChannel, hardHistogram, softHistogram, totalVariation, tvObjective, type ChannelTransform } from '../../engine/fixes/bna-fit';

/** Deterministic standard normals (Box–Muller on a small LCG). */
function normals(n: number, seed: number, mean = 0, sd = 1): Float64Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Float64Array.from({ length: n }, () => mean + sd * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

describe('soft histogram', () => {
  test('sums to one and matches the hard histogram when values sit mid-interval', () => {
    const bins = { start: 0, width: 0.1, count: 20 };
    const values = Float64Array.from({ length: 400 }, (_, i) => 0.05 + 0.1 * (i % 20));
    const { q } = softHistogram(values, bins, 150);
    const p = hardHistogram(values, bins);
    assert.ok(Math.abs(q.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    // σ(150·0.05) ≈ 0.99945: each interval keeps all but ~0.1% of its mass.
    assert.ok(totalVariation(p, q) < 2e-3, `TV ${totalVariation(p, q)}`);
  });

  test('values beyond the outer boundaries fall in the semi-infinite intervals', () => {
    const bins = { start: 0, width: 0.1, count: 5 };
    const { q } = softHistogram([-10, 10, 10], bins, 150);
    assert.ok(Math.abs(q[0] - 1 / 3) < 1e-12 && Math.abs(q[4] - 2 / 3) < 1e-12);
  });

  test('equals the definition, σ(τ(v − b_j)) summed over every boundary, inside and far outside the range', () => {
    const bins = { start: -1, width: 0.1, count: 30 };
    const values = [-50, -1.2, -1, -0.95, -0.3049, 0, 0.4999, 1.05, 1.9, 2, 2.3, 40, ...normals(100, 5, 0.5, 1)];
    const sigma = (x: number) => 1 / (1 + Math.exp(-x));
    const F = (j: number) => values.reduce((s, v) => s + sigma(150 * (v - (bins.start + j * bins.width))), 0) / values.length;
    const expected = Array.from({ length: bins.count }, (_, i) => (i === 0 ? 1 - F(1) : i === bins.count - 1 ? F(bins.count - 1) : F(i) - F(i + 1)));
    const { q } = softHistogram(values, bins, 150);
    q.forEach((qi, i) => assert.ok(Math.abs(qi - expected[i]) < 1e-12, `interval ${i}: ${qi} vs ${expected[i]}`));
  });

  test('∂(w·q)/∂v agrees with finite differences', () => {
    const bins = binsFor(normals(200, 1), 0.1);
    const values = normals(50, 2);
    const w = Float64Array.from({ length: bins.count }, (_, i) => Math.sin(i));
    const loss = (v: ArrayLike<number>) => softHistogram(v, bins, 150).q.reduce((s, qi, i) => s + w[i] * qi, 0);
    const { dv } = softHistogram(values, bins, 150, w);
    for (const k of [0, 7, 31]) {
      const h = 1e-6, plus = Float64Array.from(values), minus = Float64Array.from(values);
      plus[k] += h;
      minus[k] -= h;
      const fd = (loss(plus) - loss(minus)) / (2 * h);
      assert.ok(Math.abs(fd - dv![k]) < 1e-6 + 1e-4 * Math.abs(fd), `value ${k}: analytic ${dv![k]} vs numeric ${fd}`);
    }
  });
});

describe('channel transform', () => {
  test('clamps the normalised value to [lower, upper]', () => {
    const t: ChannelTransform = { shift: 1, scale: 2, lower: -1, upper: 3 };
    assert.equal(applyTransform(t, 3), 1);
    assert.equal(applyTransform(t, 100), 3);
    assert.equal(applyTransform(t, -100), -1);
  });

  test('the TV gradient in (shift, scale) points downhill', () => {
    const clean = normals(4000, 3);
    const stamped = normals(4000, 4, 0.8, 1.5);
    const bins = binsFor(clean, 0.1);
    const p = hardHistogram(clean, bins);
    const t: ChannelTransform = { shift: 0, scale: 1, lower: -Infinity, upper: Infinity };
    const { tv, grad } = tvObjective(t, stamped, p, bins, 150);
    const step = 0.02 / Math.hypot(grad.shift, grad.scale);
    const moved = { ...t, shift: t.shift - step * grad.shift, scale: t.scale - step * grad.scale };
    assert.ok(grad.shift < 0 && grad.scale < 0, `stamped values sit right and wide: grow shift and scale (${grad.shift}, ${grad.scale})`);
    assert.ok(tvObjective(moved, stamped, p, bins, 150).tv < tv);
  });
});

describe('fitChannel', () => {
  test('recovers the location and scale of a displaced distribution', () => {
    const clean = normals(5000, 5);
    const stamped = normals(5000, 6, 2, 1.5);
    const fit = fitChannel(clean, stamped, { binWidth: 0.1, tau: 150, lr: 0.05, iterations: 150, clip: 3, init: 'identity' });
    assert.ok(fit.tvBefore > 0.5, `before ${fit.tvBefore}`);
    assert.ok(fit.tvAfter < 0.1, `after ${fit.tvAfter}`);
    assert.ok(Math.abs(fit.transform.shift - 2) < 0.3 && Math.abs(fit.transform.scale - 1.5) < 0.3, JSON.stringify(fit.transform));
  });

  test("with the authors' budget (Adam lr 0.01, 10 iterations) each parameter moves at most about 0.1", () => {
    const fit = fitChannel(normals(2000, 9), normals(2000, 10, 2, 1.5), { ...defaultFitOptions, clip: 3 });
    const t = fit.transform;
    assert.ok(Math.abs(t.shift) <= 0.11 && Math.abs(t.scale - 1) <= 0.11 && Math.abs(t.upper - 3) <= 0.11 && Math.abs(t.lower + 3) <= 0.11, JSON.stringify(t));
    assert.ok(fit.tvAfter < fit.tvBefore);
  });

  test('a shifted distribution moves towards the clean one and the result is deterministic', () => {
    const clean = normals(5000, 7);
    const stamped = normals(5000, 8, 0.3, 1);
    const a = fitChannel(clean, stamped, { binWidth: 0.1, tau: 150, lr: 0.05, iterations: 20, clip: 3, init: 'identity' });
    const b = fitChannel(clean, stamped, { binWidth: 0.1, tau: 150, lr: 0.05, iterations: 20, clip: 3, init: 'identity' });
    assert.deepEqual(a, b);
    assert.ok(a.transform.shift > 0.1, `shift ${a.transform.shift}`);
    assert.ok(a.tvAfter < a.tvBefore);
  });
});

test('moment matching maps the stamped mean and spread onto the clean ones, never sharpening below minScale', () => {
  const clean = normals(4000, 11), stamped = normals(4000, 12, 5, 3);
  const t = momentTransform(clean, stamped, 0.5);
  assert.ok(Math.abs(t.shift - 5) < 0.2 && Math.abs(t.scale - 3) < 0.2, JSON.stringify(t));
  assert.deepEqual([t.lower, t.upper], [-0.5, 0.5]);
  const spike = momentTransform(clean, Array(100).fill(7), 3, 1);
  assert.equal(spike.scale, 1, 'a constant stamped unit is shifted, not blown up');
  assert.ok(Math.abs(spike.shift - 7) < 0.1);
});
