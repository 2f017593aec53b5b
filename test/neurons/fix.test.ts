/** The pruning fixes: fixed and adaptive modes, the trigger hand-off, what they write and report. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { applyFix, evaluate, loadDataset, loadModel, Runtime, scan } from '../../engine';
import { triggersFrom } from '../../engine/analyses/reversal/trigger';
import { subset, type Dataset } from '../../engine/data/types';
import { imageInputOf } from '../../engine/evaluate';
import type { LoadedModel } from '../../engine/formats/types';
import { splitForFix } from '../../engine/fixes/holdout';
import { fmnist } from '../helpers';
import { badnetsTrigger, previousWithTrigger } from './badnets-trigger';

const runtime = new Runtime();
after(() => runtime.dispose());

async function open(name: 'badnets' | 'clean', file = 'model.onnx') {
  const model = await loadModel(join(fmnist[name], file));
  const set = (s: string) => loadDataset({ path: join(fmnist.data, `${s}.npz`) }, imageInputOf(model.onnx));
  return { model, set };
}

const unlabelled = (d: Dataset): Dataset => ({ ...d, labels: undefined });
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

function zeroed(model: LoadedModel['onnx'], name: string): number[] {
  const d = model.initializer(name)!.data as Float32Array;
  return Array.from(d.keys()).filter((i) => d[i] === 0);
}

describe('trigger hand-off', () => {
  test("triggersFrom reads 'pairs' first, then 'nc', and ignores outputs without triggers", () => {
    const t = badnetsTrigger();
    const other = { ...t, target: 3 };
    assert.deepEqual(triggersFrom(new Map()), []);
    assert.deepEqual(triggersFrom(new Map([['nc', { state: { triggers: [other] } }]])), [other]);
    assert.deepEqual(triggersFrom(new Map([['nc', { state: { triggers: [other] } }], ['pairs', { state: { triggers: [t] } }]])), [t]);
    assert.deepEqual(triggersFrom(new Map([['pairs', { state: { triggers: [] } }], ['nc', { state: { triggers: [other] } }]])), [other]);
    assert.deepEqual(triggersFrom(new Map([['pairs', { state: { kind: 'neurons' } }]])), []);
  });
});

describe('pruning fixes', () => {
  test("fixed mode with the scan's scores prunes exactly what the scan flagged: zero γ and β in a new model", async () => {
    const { model, set } = await open('badnets');
    const before = sha(model.onnx.toBytes());
    const scanned = await scan(model, { runtime, data: set('clean'), methods: ['bnp'] });
    const r = await applyFix(model, { method: 'bnp', runtime, data: set('clean'), mode: 'fixed', previous: new Map([...scanned.outputs, ...previousWithTrigger()]), rescan: false });
    assert.deepEqual(r.pruned.map((p) => `${p.layer}[${p.channel}]`).sort(), ['bn1[4]', 'bn2[0]', 'bn3[16]', 'bn3[61]']);
    assert.deepEqual(zeroed(r.model!, 'bn3.weight'), [16, 61]);
    assert.deepEqual(zeroed(r.model!, 'bn3.bias'), [16, 61]);
    assert.deepEqual(zeroed(r.model!, 'bn1.weight'), [4]);
    assert.equal(sha(model.onnx.toBytes()), before, 'the input model is not modified');
    assert.notEqual(r.model, model.onnx);
    assert.match(r.notes.join('\n'), /fixed threshold: pruned the 4 neuron\(s\) flagged by KL > mean \+ 3·std per layer/);
    assert.equal(r.details!.mode, 'fixed');
    // BNP's four channels leave this backdoor in place, and the fix says so.
    assert.equal(r.outcome, 'failed');
    assert.ok(r.measurement!.estimated!.after > 0.5, r.headline);
  });

  test('with option layer it prunes exactly the channels the scan flagged in that layer (what the lens names)', async () => {
    const { model, set } = await open('badnets');
    const scanned = await scan(model, { runtime, data: set('clean'), methods: ['bnp'] });
    const r = await applyFix(model, { method: 'bnp', runtime, data: set('clean'), previous: new Map([...scanned.outputs, ...previousWithTrigger()]), options: { layer: 'bn3' }, rescan: false });
    assert.deepEqual(r.pruned.map((p) => `${p.layer}[${p.channel}]`).sort(), ['bn3[16]', 'bn3[61]']);
    assert.deepEqual(zeroed(r.model!, 'bn2.weight'), [], 'nothing outside bn3');
    assert.match(r.notes.join('\n'), /pruned exactly what the bn3 lens names: bn3 channels 16, 61/);
    await assert.rejects(applyFix(model, { method: 'bnp', runtime, data: set('clean'), previous: scanned.outputs, options: { layer: 'fc' }, rescan: false }), /bnp scores no layer named 'fc'/);
  });

  test('on a BN-folded export the conv filter and bias are zeroed; with no data nothing shows the backdoor removed', async () => {
    const { model } = await open('badnets', 'model.folded.onnx');
    const r = await applyFix(model, { method: 'clp', runtime, mode: 'fixed', thresholdMultiplier: 2 });
    assert.deepEqual(r.pruned.map((p) => `${p.layer}[${p.channel}]`).sort(), ['conv2[31]', 'conv3[24]', 'conv3[55]']);
    const conv3 = model.onnx.nodes.filter((n) => n.op_type === 'Conv')[2];
    const w = r.model!.initializer(conv3.input[1])!;
    const per = w.dims.slice(1).reduce((a, b) => a * b, 1);
    const data = w.data as Float32Array;
    assert.ok(data.subarray(24 * per, 25 * per).every((v) => v === 0) && data.subarray(55 * per, 56 * per).every((v) => v === 0));
    assert.deepEqual(zeroed(r.model!, conv3.input[2]), [24, 55]);
    assert.equal(r.outcome, 'failed');
    assert.match(r.headline, /^clp: failed — nothing shows the backdoor removed: no reversed trigger and no triggered data/);
  });

  test("a scan's output for the same method is reused instead of recomputed", async () => {
    const { model } = await open('badnets');
    const scanned = await scan(model, { runtime, methods: ['clp'], methodOptions: { clp: { thresholdMultiplier: 2 } } });
    const r = await applyFix(model, { method: 'clp', runtime, mode: 'fixed', previous: scanned.outputs });
    assert.deepEqual(r.pruned.map((p) => `${p.layer}[${p.channel}]`).sort(), ['bn2[31]', 'bn3[24]', 'bn3[55]']);
    assert.match(r.notes.join('\n'), /reused the scores of the scan's clp run/);
  });

  test('adaptive mode without a reversed trigger falls back to fixed u and says so', async () => {
    const { model, set } = await open('badnets');
    const r = await applyFix(model, { method: 'bnp', runtime, data: unlabelled(set('clean')), mode: 'adaptive' });
    assert.equal(r.details!.mode, 'fixed');
    assert.match(r.notes.join('\n'), /no reversed trigger that can be stamped on images \(no trigger reversed: that needs labelled clean data\): fell back to the fixed threshold/);
    // Unlabelled held-out images: agreement with the original model stands in for accuracy.
    assert.equal(r.measurement!.accuracy!.agreement, true);
    assert.equal(r.outcome, 'failed');
  });

  test('adaptive mode with the reversed trigger: prunes by rank on the fit images, measures on the held-out ones', async () => {
    const { model, set } = await open('badnets');
    const r = await applyFix(model, { method: 'clp', runtime, data: set('clean'), mode: 'adaptive', previous: previousWithTrigger(), rescan: false });
    const d = r.details as Record<string, number | boolean | string>;
    assert.equal(d.mode, 'adaptive');
    assert.ok((d.budgetUsed as number) <= 0.015 + 1e-9, `budget used ${d.budgetUsed}`);
    const notes = r.notes.join('\n');
    assert.match(notes, /adaptive: pruned \d+ neuron\(s\) in CLP ranking order/);
    assert.match(notes, /on the fit images: reversed trigger success 100\.00% → [\d.]+% \(goal < 2\.00%\); clean accuracy [\d.]+% → [\d.]+%, budget used [\d.]+ of 1\.50 points/);
    assert.match(notes, /searched on accuracy on 700 samples/);
    const m = r.measurement!;
    assert.match(m.heldOut, /^300 of the 1000 images of .*clean\.npz held out \(30% of each class, seed 0\); fitted on the other 700$/);
    assert.equal(m.triggers.length, 1);
    assert.equal(m.triggers[0].n, 270, 'the 30 held-out images of each non-target class');
    assert.equal(m.triggers[0].before, 1);
    assert.equal(m.accuracy!.n, 300);
    // Pruned in ranking order: the CLP ranking's head.
    const all = await applyFix(model, { method: 'clp', runtime, mode: 'fixed', thresholdMultiplier: 0 });
    const ranked = all.pruned.map((p) => `${p.layer}[${p.channel}]`);
    assert.ok(r.pruned.every((p) => ranked.includes(`${p.layer}[${p.channel}]`)));
  });

  test('a larger budget lets adaptive mode prune further', async () => {
    const { model, set } = await open('badnets');
    const data = subset(set('clean'), Array.from({ length: 400 }, (_, i) => i));
    const small = await applyFix(model, { method: 'bnp', runtime, data, mode: 'adaptive', previous: previousWithTrigger(), rescan: false });
    const large = await applyFix(model, { method: 'bnp', runtime, data, mode: 'adaptive', previous: previousWithTrigger(), options: { budget: 5 }, rescan: false });
    assert.ok(large.pruned.length > small.pruned.length, `${large.pruned.length} > ${small.pruned.length}`);
    assert.ok((large.details!.budgetUsed as number) <= 0.05 + 1e-9);
  });

  test('EP adaptive on a possibly poisoned set leaves the target-class samples out of the measures', async () => {
    const { model, set } = await open('badnets');
    const r = await applyFix(model, { method: 'ep', runtime, data: set('poisoned-sample'), dataKind: 'mixed', mode: 'adaptive', previous: previousWithTrigger(), rescan: false });
    assert.match(r.notes.join('\n'), /target-class samples left out: the set may be poisoned/);
    assert.ok((r.details!.budgetUsed as number) <= 0.015 + 1e-9);
    const held = r.measurement!;
    assert.ok(held.accuracy!.n < 300, 'target-class held-out samples count for nothing');
  });

  test('on the clean twin the reversed trigger already fails: adaptive mode prunes nothing, and the outcome says nothing was shown', async () => {
    const { model, set } = await open('clean');
    const r = await applyFix(model, { method: 'bnp', runtime, data: set('clean'), mode: 'adaptive', previous: previousWithTrigger(), rescan: false });
    assert.equal(r.pruned.length, 0);
    assert.match(r.notes.join('\n'), /already fails on the unpruned model/);
    assert.equal(r.outcome, 'failed');
    assert.match(r.headline, /already fails on the unfixed model/);
  });

  test('Fine-Pruning records the threshold it chose and why, on the fit images', async () => {
    const { model, set } = await open('badnets');
    const r = await applyFix(model, { method: 'fp', runtime, data: set('clean'), mode: 'fixed', options: { margin: 0.02 }, previous: previousWithTrigger(), rescan: false });
    const notes = r.notes.join('\n');
    assert.match(notes, /threshold: pruned the (\d+) most dormant of 64 channels of bn3 \(mean activation ≤ [\d.]+, accuracy [\d.]+% → [\d.]+%\): pruning \d+ would lower clean accuracy .* more than the margin of 2\.0 points/);
    const count = Number(/pruned the (\d+) most dormant/.exec(notes)![1]);
    assert.equal(r.pruned.length, count);
    assert.ok(r.pruned.every((p) => p.layer === 'bn3'));
    const fit = splitForFix(set('clean'), { seed: 0 }).fit;
    const acc = (await evaluate(r.model!, fit, runtime)).accuracy!;
    const base = (await evaluate(model.onnx, fit, runtime)).accuracy!;
    assert.ok(base - acc <= 0.02 + 1e-9, `${base} → ${acc}`);
  });
});
