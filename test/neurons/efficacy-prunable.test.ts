/**
 * Issue 8's acceptance on fixtures/fmnist/badnets-prunable (a width-8 CIFAR-style ResNet-18 trained
 * the way the pruning papers train theirs; fixtures/fmnist/README.md): the best of the pruning
 * fixes in adaptive mode brings the ASR to ≤ 5% while losing ≤ 2 points of clean accuracy, and on
 * the clean twin pruning costs ≤ 1 point, fixed or adaptive. The adaptive budget is the
 * acceptance's 2 points (the engine's default is 1: there BNP stops at 18 neurons and ~12% ASR).
 * The full table, fixed u beside adaptive, is bench/cases/neurons-efficacy-prunable.ts.
 * Measured on the held-out test and triggered sets; the defence sees only clean.npz
 * (poisoned-sample.npz for EP) and the true trigger, standing in for the reversed one.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { join } from 'node:path';
import { applyFix, loadDataset, loadModel, Runtime } from '../../engine';
import { imageInputOf } from '../../engine/evaluate';
import { fmnist } from '../helpers';
import { measureFixes, type FixMeasure } from './efficacy-measure';

const runtime = new Runtime();
after(() => runtime.dispose());

const acceptance = { options: { budget: 2 } };

const show = (r: FixMeasure) =>
  `${r.method} ${r.mode}: ASR ${(100 * r.asr).toFixed(1)}%, −${(100 * r.loss).toFixed(1)} points, ${r.pruned} pruned`;

describe('efficacy on the prunable BadNets fixture (issue 8 acceptance)', () => {
  test('BadNets: BNP in adaptive mode brings the ASR to ≤ 5% losing ≤ 2 points of test accuracy', async () => {
    const { base, rows } = await measureFixes(runtime, fmnist.badnetsPrunable, [{ method: 'bnp', mode: 'adaptive' }], acceptance);
    assert.ok(base.asr > 0.99, `unpruned ASR ${base.asr}`);
    const [bnp] = rows;
    assert.ok(bnp.asr <= 0.05, show(bnp));
    assert.ok(bnp.loss <= 0.02, show(bnp));
  });

  test('BadNets, end to end: the default detector leaves this residual fixture below its threshold, so BNP falls back to its fixed rule and says so', async () => {
    const model = await loadModel(join(fmnist.badnetsPrunable, 'model.onnx'));
    const data = loadDataset({ path: join(fmnist.data, 'clean.npz') }, imageInputOf(model.onnx));
    const r = await applyFix(model, { method: 'bnp', runtime, data, mode: 'adaptive', previous: new Map(), options: acceptance.options });
    assert.ok(r.notes.some((n) => /the 'pairs' detector reversed no backdoor trigger/.test(n)), r.notes.join('\n'));
    assert.ok(r.notes.some((n) => /fell back to the fixed threshold/.test(n)), r.notes.join('\n'));
  });

  // EP's fixed u = 3 is left out: on the mixed set (50 triggered images) it flags 11 channels of the
  // clean twin that answer the white patch, costing 2.4 points; adaptive mode prunes none of them.
  test('clean twin: pruning costs at most 1 point of test accuracy (adaptive; CLP and BNP fixed too)', async () => {
    const runs = [
      ...['clp', 'bnp', 'ep'].map((method) => ({ method, mode: 'adaptive' as const })),
      ...['clp', 'bnp'].map((method) => ({ method, mode: 'fixed' as const })),
    ];
    const { base, rows } = await measureFixes(runtime, fmnist.badnetsPrunableClean, runs, acceptance);
    assert.ok(base.asr < 0.05);
    for (const r of rows) assert.ok(r.loss <= 0.01, show(r));
  });
});
