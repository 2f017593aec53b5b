/**
 * `backdoor-lens fix` says what it has shown: exit 0 only for a removed backdoor, one line on
 * stderr otherwise, an output name that claims nothing the measurement did not show, and no file
 * at all from a trigger-based fix with no trigger.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { applyFix, loadDataset, loadModel, Runtime } from '../../engine';
import { imageInputOf } from '../../engine/evaluate';
import { cli, fileSha256, fmnist, tempDir } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());
const clean = join(fmnist.data, 'clean.npz');

describe('fix on the bundled BadNets model', () => {
  test('fp leaves the backdoor in place: exit 1, one line saying so, and no file named purified', async () => {
    const dir = tempDir();
    const model = join(dir, 'model.onnx');
    copyFileSync(join(fmnist.badnets, 'model.onnx'), model);
    const before = fileSha256(model);
    const r = await cli('fix', model, '--method', 'fp', '--data', clean, '--triggered', join(fmnist.data, 'triggered.npz'), '--target', '0');
    assert.equal(r.exitCode, 1, r.stdout);
    assert.equal(r.stderr.split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^backdoor-lens: fp: failed — .*ASR 99\.\d% → \d+\.\d% .*; wrote .*model\.fp-failed\.onnx$/);
    assert.deepEqual(readdirSync(dir).sort(), ['model.fp-failed.onnx', 'model.onnx']);
    assert.equal(fileSha256(model), before, 'the input is untouched');
    assert.match(r.stdout, /true trigger \(triggered\.npz\): attack success 99\.\d% → \d+\.\d% \(900 images\)/);
    assert.match(r.stdout, /measured on 300 of the 1000 images of .*clean\.npz held out/);
  });

  test('the fix record travels in the written model: a scan of it measures the same triggers again, side by side', async () => {
    const dir = tempDir();
    const model = join(dir, 'model.onnx');
    copyFileSync(join(fmnist.badnets, 'model.onnx'), model);
    const fixed = await cli('fix', model, '--method', 'bnp', '--mode', 'fixed', '--data', clean, '--json');
    assert.equal(fixed.exitCode, 1);
    const json = JSON.parse(fixed.stdout);
    assert.equal(json.outcome, 'failed');
    assert.deepEqual(json.written, [join(dir, 'model.bnp-failed.onnx')]);
    // Per-class accuracy on the same 300 held-out images: 30 of each class.
    const perClass = json.measurement.accuracy.perClass as { label: number; n: number; before: number; after: number }[];
    assert.deepEqual(perClass.map((c) => [c.label, c.n]), Array.from({ length: 10 }, (_, k) => [k, 30]));
    const worst = perClass.reduce((w, c) => (c.before - c.after > w.before - w.after ? c : w));
    if (worst.before > worst.after) assert.match(fixed.stderr + (await cli('fix', model, '--method', 'bnp', '--mode', 'fixed', '--data', clean, '--out', join(dir, 'again.onnx'))).stdout, new RegExp(`largest drop of one class: class ${worst.label} `));
    const scanned = await cli('scan', join(dir, 'model.bnp-failed.onnx'), '--data', clean, '--methods', 'bnp', '--json');
    const report = JSON.parse(scanned.stdout);
    assert.equal(report.repair.method, 'bnp');
    assert.equal(report.repair.outcome, 'failed');
    const target = report.repair.rows.find((r: { target?: number; what: string }) => r.target === 0 && /target 0/.test(r.what));
    // Measured again on the same held-out images: the same number the fix recorded.
    assert.equal(target.now, target.fixed);
    assert.ok(target.now > 0.02);
    assert.equal(report.verdict, 'backdoored', 'the recorded trigger still works, so the scan agrees with the failed fix');
    assert.ok(report.findings.some((f: { code: string }) => f.code === 'BL060'));
  });

  test('data-free pruning with no data: nothing shows the backdoor removed, exit 1', async () => {
    const dir = tempDir();
    const r = await cli('fix', join(fmnist.badnets, 'model.onnx'), '--method', 'clp', '--mode', 'fixed', '--threshold', '2', '--out', join(dir, 'clp.onnx'));
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /^backdoor-lens: clp: failed — nothing shows the backdoor removed/);
    const listed = /pruned 3 neurons: (.*)/.exec(r.stdout)![1].split(', ').sort();
    assert.deepEqual(listed, ['bn2[31]', 'bn3[24]', 'bn3[55]']);
    // --u, the flag's old name, still sets the same multiplier.
    const old = await cli('fix', join(fmnist.badnets, 'model.onnx'), '--method', 'clp', '--mode', 'fixed', '--u', '2', '--out', join(dir, 'clp-u.onnx'));
    assert.deepEqual(/pruned 3 neurons: (.*)/.exec(old.stdout)![1].split(', ').sort(), listed);
    // The method's own option, as in a scan.
    const own = await cli('fix', join(fmnist.badnets, 'model.onnx'), '--method', 'clp', '--mode', 'fixed', '--option', 'thresholdMultiplier=2', '--out', join(dir, 'clp-option.onnx'));
    assert.deepEqual(/pruned 3 neurons: (.*)/.exec(own.stdout)![1].split(', ').sort(), listed);
  });
});

describe('a trigger-based fix with no trigger writes nothing', () => {
  test('bna on the clean twin: the detectors find no trigger, nothing is written, exit 1', async () => {
    const dir = tempDir();
    const model = join(dir, 'model.onnx');
    copyFileSync(join(fmnist.clean, 'model.onnx'), model);
    const r = await cli('fix', model, '--method', 'bna', '--data', clean);
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(r.stderr, /^backdoor-lens: bna: failed — no backdoor trigger was found \(.*reversed no trigger on 1000 images\), and BNA corrects a detected trigger; nothing written$/);
    assert.deepEqual(readdirSync(dir), ['model.onnx']);
  });

  test('unlearn with a scan that reversed no trigger: no model, and why', async () => {
    const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const data = loadDataset({ path: clean }, imageInputOf(model.onnx));
    const r = await applyFix(model, { method: 'unlearn', runtime, data, previous: new Map([['pairs', { state: { triggers: [] } }]]) });
    assert.equal(r.model, undefined);
    assert.equal(r.outcome, 'failed');
    assert.match(r.headline, /^unlearn: failed — no backdoor trigger was found \(the scan reversed no trigger\), and unlearning needs one to unlearn; nothing written$/);
  });
});
