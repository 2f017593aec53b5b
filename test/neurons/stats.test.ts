import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gaussianKl } from '../../engine/analyses/methods/bnp';
import { layerEntropies } from '../../engine/analyses/methods/ep';
import { largestHolding } from '../../engine/analyses/neurons/search';
import { ChannelMoments, histogramEntropy, largestSingularValue, layerThreshold, suspicion, unbiasedStd } from '../../engine/analyses/neurons/stats';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

describe('neuron statistics', () => {
  test('std and thresholds are the unbiased ones (divide by n − 1)', () => {
    const x = [1, 2, 3, 4];
    close(unbiasedStd(x), Math.sqrt(5 / 3));
    close(layerThreshold(x, 3, 'above'), 2.5 + 3 * Math.sqrt(5 / 3));
    close(layerThreshold(x, 2, 'below'), 2.5 - 2 * Math.sqrt(5 / 3));
    assert.equal(unbiasedStd([7]), 0);
  });

  test('suspicion is the u at which the fixed rule would flag a score', () => {
    const x = [1, 2, 3, 4, 10];
    const s = suspicion(x, 'above');
    const t = layerThreshold(x, s[4], 'above');
    close(t, 10);
    assert.ok(suspicion(x, 'below')[0] > 0 && suspicion(x, 'below')[4] < 0);
  });

  test('largest singular value: diagonal, rank one, wide and tall matrices', () => {
    close(largestSingularValue([3, 0, 0, 0, 1, 0, 0, 0, 2], 3, 3), 3);
    const u = [1, -2, 2], v = [3, 4];
    const outer = u.flatMap((a) => v.map((b) => a * b));
    close(largestSingularValue(outer, 3, 2), 3 * 5);
    const outerT = v.flatMap((b) => u.map((a) => a * b));
    close(largestSingularValue(outerT, 2, 3), 15);
    close(largestSingularValue(outer, 3, 2, -0.5), 7.5);
    // [[1,1],[0,1]]: σmax = golden ratio.
    close(largestSingularValue([1, 1, 0, 1], 2, 2), (1 + Math.sqrt(5)) / 2);
  });

  test('histogram entropy uses strict bin edges from the layer minimum, p = count / N', () => {
    const values = [0, 0.005, 0.015, 0.025, 1];
    // 0 (the minimum) and 1 (lo + 100·w, past the last bin) fall in no bin.
    close(histogramEntropy(values, 0, 0.01, 100), -3 * 0.2 * Math.log(0.2));
    close(histogramEntropy([0.005, 0.006, 0.015], 0, 0.01, 10), -(2 / 3) * Math.log(2 / 3) - (1 / 3) * Math.log(1 / 3));
  });

  test('EP layer entropy: a channel split into two populations scores lower than a spread one', () => {
    const n = 400;
    const spread = Float32Array.from({ length: n }, (_, i) => i / n);
    const split = Float32Array.from({ length: n }, (_, i) => (i % 10 === 0 ? 5 : 0) + (i % 7) * 1e-4);
    const { entropies, constantChannels } = layerEntropies([spread, split, new Float32Array(n).fill(2)], 0.01);
    assert.ok(entropies[1] < entropies[0], `${entropies[1]} < ${entropies[0]}`);
    assert.equal(constantChannels, 1);
  });

  test('channel moments merged batch by batch equal the two-pass values, even far from zero', () => {
    const data = Float64Array.from({ length: 1000 }, (_, i) => 1e4 + Math.sin(i * 1.7) * 0.01);
    const m = new ChannelMoments(1);
    for (let off = 0; off < 1000; off += 37) m.add(0, data, off, Math.min(37, 1000 - off));
    const mean = data.reduce((a, b) => a + b, 0) / 1000;
    const variance = data.reduce((a, b) => a + (b - mean) ** 2, 0) / 999;
    close(m.mean[0], mean, 1e-12);
    close(m.variance(0), variance, 1e-6);
  });

  test('Gaussian KL is zero for equal distributions and follows the paper formula', () => {
    close(gaussianKl(1, 2, 1, 2), 0);
    close(gaussianKl(0, 1, 1, 4), Math.log(2) + (1 + 1) / 8 - 0.5);
  });

  test('prefix search finds the last count that holds with logarithmically many probes', async () => {
    for (const [n, last] of [[100, 37], [100, 0], [100, 100], [1, 1], [0, 0], [7, 6]] as const) {
      const r = await largestHolding(n, async (k) => k <= last);
      assert.equal(r.count, last, `n=${n} last=${last}`);
      assert.ok(r.probes.length <= 2 * Math.ceil(Math.log2(n + 1)) + 1, `${r.probes.length} probes`);
    }
  });
});
