import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyAttack } from '../../engine/analyses/reversal/attack-type';
import { madAnomaly, madOutliers, median } from '../../engine/analyses/stats/mad';

test('median of odd and even counts', () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test('MAD uses the 1.4826 consistency constant', () => {
  const r = madAnomaly([1, 2, 3, 4, 100]);
  assert.equal(r.median, 3);
  assert.ok(Math.abs(r.mad - 1.4826) < 1e-12); // deviations 2,1,0,1,97 → median 1
  assert.ok(Math.abs(r.anomalyIndex[4] - 97 / 1.4826) < 1e-9);
});

test("Neural Cleanse's rule flags only small norms with index above 2", () => {
  const l1 = [50, 52, 48, 55, 47, 51, 49, 53, 5, 120];
  const r = madOutliers(l1, 2, 'below');
  assert.deepEqual(r.flagged.map((f, i) => (f ? i : -1)).filter((i) => i >= 0), [8]);
  assert.ok(r.anomalyIndex[9] > 2, 'the large one is anomalous but on the wrong side');
});

test('no spread means no outliers', () => {
  const r = madOutliers([1, 1, 1, 1], 2, 'above');
  assert.deepEqual(r.flagged, [false, false, false, false]);
});

test('attack types', () => {
  const pairs = (list: [number, number][]) => list.map(([source, target]) => ({ source, target }));
  assert.equal(classifyAttack([]), null);
  assert.equal(classifyAttack(pairs([[1, 0], [2, 0], [5, 0]])), 'all-to-one');
  assert.equal(classifyAttack(pairs([[1, 0]])), 'other');
  assert.equal(classifyAttack(pairs([[0, 1], [1, 2], [2, 3], [3, 4], [9, 0]])), 'all-to-all');
  // One spurious extra source for a target, as BNA's paper reports for all-to-all BadNets.
  assert.equal(classifyAttack(pairs([[0, 1], [8, 1], [1, 2], [2, 3], [8, 9]])), 'all-to-all');
  // Two all-to-one backdoors.
  assert.equal(classifyAttack(pairs([[1, 0], [2, 0], [3, 0], [1, 5], [2, 5], [3, 5]])), 'other');
});
