/**
 * The real class-pair scan of the BadNets fixture, then BNA on its detection: one scan shared by
 * the detection checks, the fix and the CLI checks (a scan takes tens of seconds).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { applyFix, evaluate, loadDataset, loadModel, Runtime, scan, writeFileAtomic, type ScanResult } from '../../engine';
import { imageInputOf } from '../../engine/evaluate';
import { decodePng } from '../../engine/image/png';
import type { ReversedTrigger } from '../../engine/analyses/reversal/trigger';
import { triggerFlags } from '../../engine/fixes/bna-graph';
import type { FixResult } from '../../engine/fixes/types';
import { cli, fmnist, tempDir } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());
const modelPath = join(fmnist.badnets, 'model.onnx');
const cleanSet = join(fmnist.data, 'clean.npz');

describe('BadNets all-to-one fixture (target 0)', () => {
  let result: ScanResult;
  let fix: FixResult;
  const dir = tempDir();
  const fixedPath = join(dir, 'bna.onnx');

  before(async () => {
    const model = await loadModel(modelPath);
    const data = loadDataset({ path: cleanSet }, imageInputOf(model.onnx));
    result = await scan(model, { runtime, data, methods: ['pairs'], seed: 0 });
    // BNA fits on all of clean.npz (as the BNA acceptance was set) and measures itself on test.npz.
    const heldOut = loadDataset({ path: join(fmnist.data, 'test.npz') }, imageInputOf(model.onnx));
    fix = await applyFix(model, { method: 'bna', runtime, data, heldOut, previous: result.outputs, rescan: { methods: ['pairs'] } });
    writeFileAtomic(fixedPath, fix.model!.toBytes());
  });

  test('backdoored, target 0, all-to-one: the patch screen flags class 0 and its trigger moves most classes to it', () => {
    const { report } = result;
    assert.equal(report.verdict, 'backdoored');
    assert.deepEqual(report.targets, [0]);
    assert.equal(report.attackType, 'all-to-one');
    const flagged = report.pairs.filter((p) => p.flagged);
    assert.ok(flagged.every((p) => p.target === 0), JSON.stringify(flagged));
    assert.ok(new Set(flagged.map((p) => p.source)).size >= 5, `sources ${flagged.map((p) => p.source)}`);
    const decided = report.evidence.find((e) => e.flagged)!;
    assert.equal(decided.method, 'pairs:targets:patch');
    assert.ok(decided.value > decided.threshold);
    assert.match(decided.thresholdSource, /^calibrated: highest of \d+ clean-control scans/);
    assert.equal(report.labels.filter((l) => l.method === 'pairs:targets:patch').length, 10);
    // Every target's patch size is stated, the target's first and the ratio's median last.
    const sizes = report.methods.find((m) => m.method === 'pairs')!.notes!.find((n) => n.startsWith('targets:patch sizes'))!;
    const listed = [...sizes.matchAll(/(\d) (\d+\.\d\d)\*?(?=,|;)/g)].map((m) => ({ target: Number(m[1]), size: Number(m[2]) }));
    assert.equal(listed.length, 10, sizes);
    assert.equal(listed[0].target, 0, sizes);
    assert.ok(listed.every((e, i) => i === 0 || e.size >= listed[i - 1].size), sizes);
    const median = Number(/median (\d+\.\d+)$/.exec(sizes)![1]);
    assert.ok(Math.abs(median / listed[0].size - decided.value) < 0.01 * decided.value, `${sizes} vs R ${decided.value}`);
  });

  test('BL004 names the target, the trigger size, the ratio and the threshold in its first 120 characters; artifacts for the target', () => {
    const { report, images } = result;
    const bl004 = report.findings.filter((f) => f.code === 'BL004');
    assert.equal(bl004.length, 1);
    const f = bl004[0];
    assert.equal(f.severity, 'error');
    assert.equal(f.location?.label, 0);
    assert.match(f.message.slice(0, 120), /^Backdoor to class 0: a patch trigger \(\|m\|₁ [\d.]+\) moves \d+ of 9 classes; [\d.]+× smaller than typical \(threshold [\d.]+\)/);
    for (const kind of ['mask', 'pattern', 'stamped']) {
      const img = images.find((i) => i.kind === kind && i.label === 0);
      assert.ok(img, `${kind} image of target 0`);
      assert.equal(decodePng(img.png).width, 112);
    }
  });

  test('the reversed triggers are handed over as state.triggers, and the strongest sits on the real patch', () => {
    const triggers = (result.outputs.get('pairs')!.state as { triggers: ReversedTrigger[] }).triggers;
    assert.equal(triggers.length, 1);
    assert.equal(triggers[0].target, 0);
    assert.ok(triggers[0].sources.length >= 5 && !triggers[0].sources.includes(0));
    const mask = triggers[0].mask!;
    let inside = 0, total = 0;
    mask.forEach((m, i) => {
      total += m;
      if (Math.floor(i / 28) >= 23 && Math.floor(i / 28) <= 27 && i % 28 >= 23 && i % 28 <= 27) inside += m;
    });
    assert.ok(inside / total > 0.5, `mask mass on the trigger corner: ${(inside / total).toFixed(2)}`);
  });

  test('the scan reports its gradient evaluations', () => {
    const run = result.report.methods.find((m) => m.method === 'pairs')!;
    assert.equal(run.status, 'ran');
    assert.ok((run.gradientEvaluations ?? 0) > 1000);
  });

  test('BNA: ASR ≤ 5%, clean accuracy loss ≤ 1 point, ≥ 80% of triggered inputs flagged, ≤ 5% of clean target-class inputs flagged', async () => {
    const model = await loadModel(modelPath);
    const spec = imageInputOf(model.onnx);
    const test_ = loadDataset({ path: join(fmnist.data, 'test.npz') }, spec);
    const triggered = loadDataset({ path: join(fmnist.data, 'triggered.npz') }, spec);
    const before = await evaluate(model.onnx, test_, runtime);
    const after_ = await evaluate(fix.model!, test_, runtime);
    const attack = await evaluate(fix.model!, triggered, runtime, { target: 0 });
    assert.ok(attack.asr! <= 0.05, `ASR ${attack.asr}`);
    assert.ok(after_.accuracy! >= before.accuracy! - 0.01, `accuracy ${before.accuracy} → ${after_.accuracy}`);
    const flags = (await triggerFlags(fix.model!, triggered, runtime))!;
    const nonTarget = Array.from(flags).filter((_, i) => triggered.labels![i] !== 0);
    const flagRate = nonTarget.reduce((a, b) => a + b, 0) / nonTarget.length;
    assert.ok(flagRate >= 0.8, `triggered inputs flagged: ${(100 * flagRate).toFixed(1)}%`);
    const cleanFlags = (await triggerFlags(fix.model!, test_, runtime))!;
    const cleanTarget = Array.from(cleanFlags).filter((_, i) => test_.labels![i] === 0);
    const cleanRate = cleanTarget.reduce((a, b) => a + b, 0) / cleanTarget.length;
    assert.ok(cleanRate <= 0.05, `clean target-class inputs flagged: ${(100 * cleanRate).toFixed(1)}% (${fix.notes.join('; ')})`);
  });

  test('BNA keeps every weight of f and adds trigger_detected', async () => {
    const model = await loadModel(modelPath);
    for (const name of model.onnx.initializerNames()) assert.deepEqual(fix.model!.initializer(name)!.data, model.onnx.initializer(name)!.data, name);
    assert.deepEqual(fix.model!.outputs().map((o) => o.name), ['logits', 'trigger_detected']);
    assert.equal(fix.method, 'bna');
    assert.ok(fix.notes.some((n) => /re-estimated on classes/.test(n)));
  });

  test("the rescan of the BNA model judges its corrected network and agrees with the fix's outcome", async () => {
    const written = await loadModel(fixedPath);
    const data = loadDataset({ path: cleanSet }, imageInputOf(written.onnx));
    const rescan = fix.rescan ?? (await scan(written, { runtime, data, methods: ['pairs'], seed: 0 }));
    const report = rescan.report;
    assert.ok(report.findings.some((f) => f.code === 'BL062' && /corrected target 0: the scan judged the corrected network g0/.test(f.message)), JSON.stringify(report.findings.map((f) => f.message)));
    assert.equal(report.verdict === 'backdoored', fix.outcome !== 'removed', `${fix.headline} / rescan ${report.verdict} ${report.targets}`);
    if (fix.outcome !== 'removed') return;
    // The record the fix left is measured again, beside what the fix measured.
    const again = await scan(written, { runtime, data, methods: ['pairs'], seed: 0 });
    assert.equal(again.report.repair?.method, 'bna');
    assert.deepEqual(again.report.repair?.bna?.targets, [0]);
    const row = again.report.repair!.rows.find((r) => r.target === 0)!;
    assert.equal(row.now, row.fixed);
  });

  test('eval on the BNA model prints the flagged share and the source-class accuracy on triggered inputs', async () => {
    const r = await cli('eval', fixedPath, '--data', join(fmnist.data, 'triggered.npz'), '--target', '0');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /source-class accuracy on triggered images: \d+\.\d+%/);
    assert.match(r.stdout, /flagged as triggered \(BNA trigger_detected\): [\d.]+% of all images, [\d.]+% of non-target images/);
    const json = JSON.parse((await cli('eval', fixedPath, '--data', join(fmnist.data, 'triggered.npz'), '--target', '0', '--json')).stdout);
    assert.ok(json.triggerDetected.shareNonTarget >= 0.8);
    assert.ok(json.asr <= 0.05);
  });

  test("eval --strip reports STRIP's flagged share beside BNA's", async () => {
    // STRIP looks for inputs the model is sure of whatever is blended in: the backdoored f on triggered images.
    const json = JSON.parse((await cli('eval', join(fmnist.badnets, 'model.onnx'), '--data', join(fmnist.data, 'triggered.npz'), '--target', '0', '--strip', cleanSet, '--json')).stdout);
    assert.ok(json.strip.shareNonTarget >= 0.8, `STRIP flagged ${json.strip.shareNonTarget}`);
    assert.ok(json.strip.threshold > 0);
    assert.equal(json.strip.calibration.n, 1000);
    // On the BNA model both flags are reported side by side.
    const both = JSON.parse((await cli('eval', fixedPath, '--data', join(fmnist.data, 'triggered.npz'), '--target', '0', '--strip', cleanSet, '--json')).stdout);
    assert.ok(both.triggerDetected.shareNonTarget >= 0.8);
    assert.equal(typeof both.strip.shareNonTarget, 'number');
    const text = await cli('eval', join(fmnist.badnets, 'model.onnx'), '--data', join(fmnist.data, 'test.npz'), '--strip', cleanSet);
    assert.match(text.stdout, /flagged by STRIP \(entropy < [\d.]+, 1% of .*clean\.npz below\): [\d.]+% of all images/);
    assert.doesNotMatch(text.stdout, /trigger_detected/, 'an unfixed model has no BNA flag');
  });
});
