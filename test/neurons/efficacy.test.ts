/**
 * Efficacy on the committed fixtures, measured on the held-out test and triggered sets while the
 * defence sees only clean.npz (poisoned-sample.npz for EP). The acceptance target "ASR ≤ 5%" is
 * NOT reached on this BadNets model by any channel pruning within 2 points (see
 * test/bench-internals/neurons-efficacy.ts: even a greedy oracle guided by the true trigger stops at ~22%),
 * so these tests pin what does hold: the accuracy cost stays within the budgets, the ASR never
 * rises, and the clean twin loses at most 1 point. The acceptance itself is tested on
 * fixtures/fmnist/badnets-prunable (efficacy-prunable.test.ts).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Runtime } from '../../engine';
import { fmnist } from '../helpers';
import { measureFixes } from './efficacy-measure';

const runtime = new Runtime();
after(() => runtime.dispose());

const methodsIn = (modes: ('fixed' | 'adaptive')[]) => ['clp', 'bnp', 'ep'].flatMap((method) => modes.map((mode) => ({ method, mode })));

describe('efficacy on the fixtures', () => {
  test('BadNets: adaptive pruning with the reversed trigger costs ≤ 2 points of test accuracy and never raises the ASR', async () => {
    const { base, rows } = await measureFixes(runtime, fmnist.badnets, methodsIn(['adaptive']));
    assert.ok(base.asr > 0.99);
    for (const r of rows) {
      assert.ok(r.loss <= 0.02, `${r.method} ${r.mode}: test accuracy −${(100 * r.loss).toFixed(1)} points`);
      assert.ok(r.asr <= base.asr, `${r.method} ${r.mode}: ASR ${r.asr} > ${base.asr}`);
    }
    assert.ok(rows.some((r) => r.pruned > 0));
  });

  test('clean twin: pruning costs at most 1 point of test accuracy, fixed or adaptive', async () => {
    const { base, rows } = await measureFixes(runtime, fmnist.clean, methodsIn(['fixed', 'adaptive']));
    assert.ok(base.asr < 0.05);
    for (const r of rows) assert.ok(r.loss <= 0.01, `${r.method} ${r.mode}: test accuracy −${(100 * r.loss).toFixed(1)} points (${r.pruned} pruned)`);
  });
});
