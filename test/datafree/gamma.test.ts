/** MM-BD's null fit and p-value against scipy (fixtures/mmbd/gamma-reference.json, tools/fixtures/mmbd_gamma_reference.py). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fitGamma, gammaPenalizedNll, logGamma, maxOrderPValue, regularizedGamma } from '../../engine/analyses/stats/gamma';
import { nelderMead } from '../../engine/analyses/stats/nelder-mead';
import { fixtures } from '../helpers';

interface Case {
  name: string;
  stats: number[];
  null: number[];
  fit: { shape: number; loc: number; scale: number };
  nll: number;
  sf: number;
  pValue: number;
}
const reference = JSON.parse(readFileSync(join(fixtures, 'mmbd/gamma-reference.json'), 'utf8')) as { cases: Case[] };

const close = (actual: number, expected: number, rtol: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= rtol * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);

describe('gamma special functions', () => {
  test('log Γ matches known values', () => {
    close(logGamma(1), 0, 1e-14, 'lgamma(1)');
    close(logGamma(0.5), Math.log(Math.sqrt(Math.PI)), 1e-14, 'lgamma(0.5)');
    close(logGamma(10), Math.log(362880), 1e-14, 'lgamma(10)');
    close(logGamma(300.5), 1412.053542041266, 1e-13, 'lgamma(300.5)');
    close(logGamma(0.01), 4.599479878042022, 1e-13, 'lgamma(0.01)');
  });

  test('regularised incomplete gamma: P + Q = 1, exponential and Erlang closed forms, both branches', () => {
    for (const x of [0.1, 0.9, 2, 7.5, 40]) close(regularizedGamma(1, x).q, Math.exp(-x), 1e-13, `Q(1, ${x})`);
    // Erlang(3): Q(3, x) = e^-x (1 + x + x²/2), on both sides of x = a + 1.
    for (const x of [0.5, 3.9, 4.1, 20]) close(regularizedGamma(3, x).q, Math.exp(-x) * (1 + x + (x * x) / 2), 1e-12, `Q(3, ${x})`);
    for (const [a, x] of [[0.3, 0.2], [5, 1], [50, 60]]) {
      const { p, q } = regularizedGamma(a, x);
      close(p + q, 1, 1e-14, `P+Q at (${a}, ${x})`);
    }
    // Far in the tail the survival keeps its digits instead of rounding to 0.
    const tail = regularizedGamma(2, 60).q;
    close(tail, Math.exp(-60) * 61, 1e-12, 'Q(2, 60)');
  });
});

describe('Nelder–Mead (scipy fmin semantics)', () => {
  test('minimises the Rosenbrock function from (-1.2, 1) to (1, 1)', () => {
    const r = nelderMead(([x, y]) => 100 * (y - x * x) ** 2 + (1 - x) ** 2, [-1.2, 1], { xatol: 1e-8, fatol: 1e-8, maxIterations: 2000, maxEvaluations: 4000 });
    assert.ok(r.converged);
    close(r.x[0], 1, 1e-5, 'x');
    close(r.x[1], 1, 1e-5, 'y');
  });

  test('stops at the iteration limit and says so', () => {
    const r = nelderMead(([x, y]) => 100 * (y - x * x) ** 2 + (1 - x) ** 2, [-1.2, 1], { maxIterations: 5 });
    assert.equal(r.converged, false);
    assert.equal(r.iterations, 5);
  });
});

describe('gamma.fit and the order-statistic p-value against scipy', () => {
  for (const c of reference.cases) {
    test(c.name, () => {
      const fit = fitGamma(c.null);
      assert.ok(fit, 'a fit');
      const theirs = gammaPenalizedNll(c.null, c.fit.shape, c.fit.loc, c.fit.scale);
      close(theirs, c.nll, 1e-9, "our NLL at scipy's parameters vs scipy's nnlf");
      // Both are Nelder–Mead runs from the same start: our optimum is at least as good as scipy's.
      const ours = gammaPenalizedNll(c.null, fit.shape, fit.loc, fit.scale);
      assert.ok(ours <= theirs + 1e-6, `NLL ${ours} > scipy ${theirs}`);
      // The same distribution: mean and standard deviation agree (shape and loc trade off along a
      // flat ridge of the likelihood when the null is near normal, as in clean-like).
      const mean = (f: { shape: number; loc: number; scale: number }) => f.loc + f.shape * f.scale;
      const sd = (f: { shape: number; scale: number }) => Math.sqrt(f.shape) * f.scale;
      close(mean(fit), mean(c.fit), 1e-3, 'mean');
      close(sd(fit), sd(c.fit), 1e-2, 'standard deviation');
      const max = Math.max(...c.stats);
      const p = maxOrderPValue(fit, max, c.stats.length);
      // scipy computes 1 − cdf^K, which rounds to 0 below ~1e-16; ours keeps the digits.
      if (c.pValue === 0) assert.ok(p < 1e-12, `p ${p}`);
      else assert.ok(Math.abs(p - c.pValue) <= 0.03 * c.pValue, `p-value ${p} vs scipy ${c.pValue}`);
    });
  }

  test('no fit for fewer than two values or no spread', () => {
    assert.equal(fitGamma([3]), undefined);
    assert.equal(fitGamma([2, 2, 2]), undefined);
    assert.equal(fitGamma([1, NaN, 3]), undefined);
  });
});
