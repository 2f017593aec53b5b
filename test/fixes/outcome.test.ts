/**
 * The pieces a fix measures itself with: the held-out split, the outcome rule, the record a fixed
 * model carries, triggers of kinds that cannot be stamped, and the BNA model's corrected networks.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { evaluate, loadDataset, loadModel, Runtime } from '../../engine';
import type { ReversedTrigger } from '../../engine/analyses/reversal/trigger';
import { imageInputOf } from '../../engine/evaluate';
import { bnaModel, bnaStructure, networkOf } from '../../engine/fixes/bna-graph';
import { heldOutIndices, splitForFix } from '../../engine/fixes/holdout';
import { FixProbe, pairedChange, type FixMeasurement } from '../../engine/fixes/measure';
import { judge } from '../../engine/fixes/outcome';
import type { ReversedAgain } from '../../engine/fixes/reverse-again';
import { FIX_RECORD_KEY, readRecord, writeRecord } from '../../engine/fixes/record';
import { atFlagBound, stampOrExplain, triggerLabel, triggerSize, withFlagBoundCopies } from '../../engine/fixes/triggers';
import { fmnist } from '../helpers';
import { badnetsTrigger } from '../neurons/badnets-trigger';

const runtime = new Runtime();
after(() => runtime.dispose());

async function open(name: 'badnets' | 'clean') {
  const model = await loadModel(join(fmnist[name], 'model.onnx'));
  const set = (s: string) => loadDataset({ path: join(fmnist.data, `${s}.npz`) }, imageInputOf(model.onnx));
  return { model, set };
}

function measured(over: Partial<FixMeasurement>): FixMeasurement {
  return { heldOut: '300 images', accuracy: { before: 0.9, after: 0.89, n: 300, agreement: false, perClass: [] }, triggers: [], targets: [], unstamped: [], estimated: { before: 0.99, after: 0.01 }, ...over };
}

/** A trigger of a kind stampTrigger does not know (a feature-space trigger, say). */
const featureTrigger = (): ReversedTrigger => ({ kind: 'feature' as ReversedTrigger['kind'], target: 0, sources: [3], range: { min: [0], max: [1] } });

describe('the outcome a fix states', () => {
  test('removed: ASR at most the goal within the budget; a rescan that still finds a backdoor makes it failed', () => {
    assert.equal(judge(measured({})).outcome, 'removed');
    assert.match(judge(measured({})).reason, /^ASR 99\.0% → 1\.0% \(reversed triggers\), accuracy 90\.0% → 89\.0%$/);
    const rescan = judge(measured({}), undefined, undefined, { backdoored: true, targets: [0], summary: 'pairs:patch 3 → 0 anomaly index 9.1 > 7' });
    assert.equal(rescan.outcome, 'failed');
    assert.match(rescan.reason, /a rescan still finds a backdoor \(pairs:patch 3 → 0/);
    assert.equal(judge(measured({}), undefined, undefined, { backdoored: false, targets: [], summary: 'no backdoor found' }).reason.endsWith('a rescan finds no backdoor'), true);
  });

  test('reduced: at least halved within the budget; failed: still working, over the budget, or nothing measured', () => {
    assert.equal(judge(measured({ estimated: { before: 0.99, after: 0.3 } })).outcome, 'reduced');
    const still = judge(measured({ estimated: { before: 0.99, after: 0.82 } }));
    assert.equal(still.outcome, 'failed');
    assert.match(still.reason, /^the trigger still works: ASR 99\.0% → 82\.0%/);
    const costly = judge(measured({ accuracy: { before: 0.9, after: 0.88, n: 300, agreement: false, perClass: [] } }));
    assert.equal(costly.outcome, 'failed');
    assert.match(costly.reason, /^costs 2\.0 points of accuracy \(budget 1\.5 points\)/);
    assert.equal(judge(measured({ accuracy: { before: 0.9, after: 0.88, n: 300, agreement: false, perClass: [] } }), 0.02, 0.025).outcome, 'removed');
    assert.match(judge(measured({ estimated: null })).reason, /nothing shows the backdoor removed: no reversed trigger and no triggered data/);
    assert.match(judge(measured({ estimated: { before: 0.01, after: 0 } })).reason, /already fails on the unfixed model/);
  });

  test('the accuracy change is measured paired, and a removal the held-out images cannot confirm within the budget is only reduced, and says why', () => {
    // 300 images; the fix turns 6 right answers wrong and 3 wrong ones right: −1.0 point.
    const reference = new Int32Array(300);
    const before = new Int32Array(300), after = new Int32Array(300);
    for (let i = 0; i < 300; i++) {
      before[i] = i < 30 ? 1 : 0; // 270 right before
      after[i] = before[i];
    }
    for (let i = 30; i < 36; i++) after[i] = 1; // lost
    for (let i = 0; i < 3; i++) after[i] = 0; // gained
    const idx = Array.from({ length: 300 }, (_, i) => i);
    const p = pairedChange(before, after, reference, idx);
    assert.equal(p.lost, 6);
    assert.equal(p.gained, 3);
    // d ∈ {−1, 0, 1}: Σd² = 9, Σd = 3 → var (9 − 9/300)/299, margin 1.96·√(var/300) ≈ 0.0196.
    assert.ok(Math.abs(p.margin - 1.96 * Math.sqrt((9 - 9 / 300) / 299 / 300)) < 1e-12);
    assert.deepEqual(pairedChange(before, before, reference, idx), { lost: 0, gained: 0, margin: 0 });

    const accuracy = (paired: typeof p) => ({ before: 0.9, after: 0.89, n: 300, agreement: false, perClass: [], paired });
    const unsure = judge(measured({ accuracy: accuracy(p) }));
    assert.equal(unsure.outcome, 'reduced');
    assert.match(unsure.reason, /accuracy 90\.0% → 89\.0% \(±2\.0 at 95%, 300 images\)/);
    assert.match(unsure.reason, /, but 300 held-out images cannot confirm the 1\.5 points budget \(cost up to 3\.0 points at 95%\): measure on more with --held-out$/);
    const sure = judge(measured({ accuracy: accuracy({ lost: 3, gained: 0, margin: 0.002 }) }));
    assert.equal(sure.outcome, 'removed');
    assert.doesNotMatch(sure.reason, /cannot confirm/);
  });

  test('a trigger reversed again on the fixed model that still works overrules the in-sample estimate', () => {
    const again = (over: Partial<ReversedAgain>): ReversedAgain => ({ from: 'patch trigger 0, 1 → 2', kind: 'patch', target: 2, size: 0.4, bound: 1.3, rate: 0.85, n: 270, survived: true, ...over });
    const survived = judge(measured({ reversedAgain: [again({})] }));
    assert.equal(survived.outcome, 'failed');
    assert.match(survived.reason, /^the backdoor survived: patch trigger → 2 reversed again at size 0\.40 ≤ 1\.30 moves 85\.0% of 270 held-out images/);
    // Halved by the new trigger too: reduced, with the new trigger named.
    const halved = judge(measured({ reversedAgain: [again({ rate: 0.3 })] }));
    assert.equal(halved.outcome, 'reduced');
    assert.match(halved.reason, /but patch trigger → 2 reversed again at size 0\.40 ≤ 1\.30 moves 30\.0%/);
    // Too large to be flagged, or below the goal on held-out images: it does not count.
    assert.equal(judge(measured({ reversedAgain: [again({ size: 2, survived: false })] })).outcome, 'removed');
    assert.equal(judge(measured({ reversedAgain: [again({ size: null, rate: null, survived: false })] })).outcome, 'removed');
  });

  test("each trigger is also measured grown to the detector's flag bound; the estimate is the worst single trigger", () => {
    const range = { min: [0], max: [1] };
    const v = Float32Array.from({ length: 4 }, () => 0.1); // ‖v‖₂ = 0.2
    const perturbation: ReversedTrigger = { kind: 'perturbation', target: 2, sources: [0, 1], perturbation: v, range, flaggedBelowSize: 0.5 };
    const grown = atFlagBound(perturbation)!;
    assert.ok(Math.abs(grown.atFlagBound! - 2.5) < 1e-6);
    assert.ok(Math.abs(triggerSize(grown) - 0.5) < 1e-6);
    assert.match(triggerLabel(grown), /^perturbation trigger 0, 1 → 2, grown ×2\.5 to the flag bound$/);
    // A patch mask grows but never past 1: at most the bound.
    const patch: ReversedTrigger = { kind: 'patch', target: 2, sources: [0], mask: Float32Array.from([0.5, 0.5, 0.1, 0]), pattern: new Float32Array(4), range, flaggedBelowSize: 2.2 };
    const grownPatch = atFlagBound(patch)!;
    assert.deepEqual(Array.from(grownPatch.mask!).map((m) => Math.round(m * 100) / 100), [1, 1, 0.2, 0]);
    assert.ok(triggerSize(grownPatch) <= 2.2 + 1e-6);
    // No bound, or already that large: no copy.
    assert.equal(atFlagBound({ ...perturbation, flaggedBelowSize: undefined }), undefined);
    assert.equal(atFlagBound({ ...perturbation, flaggedBelowSize: 0.1 }), undefined);
    assert.equal(withFlagBoundCopies([perturbation, { ...perturbation, flaggedBelowSize: undefined }]).length, 3);
  });

  test('the true ASR counts when it is the worst', () => {
    const m = measured({ trueAttack: { before: 1, after: 0.05, n: 900, source: 'triggered.npz' }, estimated: { before: 1, after: 0.05 } });
    assert.match(judge(m).reason, /ASR 100\.0% → 5\.0% \(true trigger\)/);
  });
});

describe('the held-out split', () => {
  test('stratified, deterministic for the same data and seed, different for another seed', async () => {
    const { set } = await open('badnets');
    const data = set('clean');
    const a = splitForFix(data, { seed: 0 }), b = splitForFix(data, { seed: 0 }), c = splitForFix(data, { seed: 1 });
    assert.equal(a.heldOut.n, 300);
    assert.equal(a.fit.n, 700);
    assert.deepEqual(a.heldOut.labels, b.heldOut.labels);
    assert.deepEqual(heldOutIndices(data, 0.3, 0), heldOutIndices(data, 0.3, 0));
    assert.notDeepEqual(heldOutIndices(data, 0.3, 0), heldOutIndices(data, 0.3, 1));
    for (let k = 0; k < 10; k++) assert.equal(a.heldOut.labels!.filter((y) => y === k).length, 30, `class ${k}`);
    // No image is in both parts.
    const held = new Set(heldOutIndices(data, 0.3, 0));
    assert.equal(held.size, 300);
    assert.equal(c.heldOut.n, 300);
  });

  test('a separate held-out set: fit on all of the data, measure on the other', async () => {
    const { set } = await open('badnets');
    const s = splitForFix(set('clean'), { heldOut: set('test') });
    assert.equal(s.fit.n, 1000);
    assert.equal(s.heldOut.n, 1000);
    assert.equal(s.share, undefined);
    assert.match(s.description, /a separate held-out set; fitted on all 1000/);
  });
});

describe('triggers of every kind', () => {
  test('a kind that cannot be stamped on images is reported with the reason, not measured as a trigger that moves nothing', async () => {
    const { model, set } = await open('badnets');
    const held = set('test');
    assert.equal(stampOrExplain(featureTrigger(), held, [0]).ok, false);
    const probe = FixProbe.build(held, 'test.npz', [badnetsTrigger(), featureTrigger()], held.labels!);
    assert.deepEqual(probe.measuredTriggers.map((t) => t.kind), ['patch']);
    assert.equal(probe.unstamped.length, 1);
    assert.match(probe.unstamped[0].reason, /a feature trigger cannot be stamped on input images/);
    const reading = await probe.read(model.onnx, runtime);
    const m = probe.compare(reading, reading);
    assert.ok(m.targets[0].before > 0.99, 'the true patch works on the backdoored model');
    assert.equal(m.unstamped[0].label, 'feature trigger 3 → 0');
  });
});

describe('per-class accuracy', () => {
  test('each class of the held-out images before and after; one class broken by a fix shows there alone', async () => {
    const { model, set } = await open('badnets');
    const held = set('test');
    const probe = FixProbe.build(held, 'test.npz', [badnetsTrigger()], held.labels!);
    const before = await probe.read(model.onnx, runtime);
    // A "fix" that sends every clean image of class 3 elsewhere.
    const after = { ...before, predictions: before.predictions.map((p, i) => (i < held.n && held.labels![i] === 3 ? 4 : p)) };
    const m = probe.compare(before, after);
    const perClass = m.accuracy!.perClass;
    assert.deepEqual(perClass.map((c) => c.label), [...new Set(held.labels!)].sort((a, b) => a - b));
    assert.equal(perClass.reduce((a, c) => a + c.n, 0), m.accuracy!.n);
    const weighted = (k: 'before' | 'after') => perClass.reduce((a, c) => a + c[k] * c.n, 0) / m.accuracy!.n;
    assert.ok(Math.abs(weighted('before') - m.accuracy!.before) < 1e-9 && Math.abs(weighted('after') - m.accuracy!.after) < 1e-9);
    for (const c of perClass) {
      if (c.label === 3) assert.ok(c.before > 0.5 && c.after === 0, `class 3: ${c.before} → ${c.after}`);
      else assert.equal(c.after, c.before, `class ${c.label}`);
    }
  });
});

describe('the fix record in the fixed model', () => {
  test('round-trips triggers of any kind (typed arrays included); a damaged record is ignored', async () => {
    const { model } = await open('badnets');
    const copy = model.onnx.clone();
    const warp = { kind: 'warp', target: 2, sources: [], flow: Float32Array.from([0.5, -0.25]), range: { min: [0], max: [1] } } as unknown as ReversedTrigger;
    const record = {
      method: 'unlearn', outcome: 'removed' as const, goal: 0.02, budget: 0.015, split: { share: 0.3, seed: 0 },
      measurement: { heldOut: 'h', accuracy: null, targets: [], triggers: [], estimated: null }, triggers: [badnetsTrigger(), warp],
    };
    writeRecord(copy, record);
    const back = readRecord(copy.clone())!;
    assert.equal(back.method, 'unlearn');
    assert.deepEqual(back.triggers[0].mask, badnetsTrigger().mask);
    assert.deepEqual((back.triggers[1] as unknown as { flow: Float32Array }).flow, Float32Array.from([0.5, -0.25]));
    for (const bad of ['{', JSON.stringify({ version: 1, method: 'x', outcome: 'removed', goal: 7 }), JSON.stringify({ version: 9 })]) {
      copy.proto.metadata_props = [{ key: FIX_RECORD_KEY, value: bad }];
      assert.equal(readRecord(copy), undefined, bad);
    }
  });
});

describe("a BNA model's corrected networks", () => {
  test('recognised by its rule; each g_t comes out as a model of its own with the original interface', async () => {
    const { model, set } = await open('badnets');
    assert.equal(bnaStructure(model.onnx), undefined);
    // Identity corrections: g_t computes f.
    const combined = bnaModel(model.onnx, [{ target: 0, layers: [] }, { target: 5, layers: [] }]);
    const s = bnaStructure(combined)!;
    assert.deepEqual(s.targets, [0, 5]);
    const g = networkOf(combined, s.correctedLogits.get(5)!, 'g5');
    assert.deepEqual(g.outputs().map((o) => o.name), model.onnx.outputs().map((o) => o.name));
    assert.deepEqual(g.inputs().map((i) => i.name), model.onnx.inputs().map((i) => i.name));
    const test_ = set('test');
    assert.deepEqual((await evaluate(g, test_, runtime)).predictions, (await evaluate(model.onnx, test_, runtime)).predictions);
  });
});
