/**
 * MM-BD, the data-free detector: geometry without data, the margin search, the test, and scans
 * with no data on committed models (fixtures and tiny built graphs).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadDataset, loadModel, resolveMethods, Runtime, scan } from '../../engine';
import { dataFreeGeometry, mmbdOptions, testMargins } from '../../engine/analyses/methods/mmbd';
import { MMBD_THRESHOLD } from '../../engine/analyses/thresholds';
import { imageInputOf } from '../../engine/evaluate';
import { GraphBuilder } from '../../engine/graph/builder';
import { fmnist, tempDir } from '../helpers';

const runtime = new Runtime({ threads: 2 });
after(() => runtime.dispose());
const dir = tempDir('bl-mmbd-');

/** A small conv net with fixed pseudo-random weights: input [N, C, S, S] (or NHWC), `classes` logits. */
function tinyModel(name: string, channels: number, size: number, classes: number, layout: 'NCHW' | 'NHWC' = 'NCHW'): string {
  const b = new GraphBuilder('tiny', 13);
  const x = b.input('input', 'float32', layout === 'NCHW' ? ['N', channels, size, size] : ['N', size, size, channels]);
  const nchw = layout === 'NCHW' ? x : b.op('Transpose', [x], { perm: [0, 3, 1, 2] });
  const w = Array.from({ length: 4 * channels * 9 }, (_, i) => Math.sin(1.7 * i + 0.3) * 0.5);
  const conv = b.op('Conv', [nchw, b.constantFloat(w, [4, channels, 3, 3]), b.constantFloat([0.1, -0.1, 0.05, 0])], { strides: [2, 2] });
  const flat = b.op('Flatten', [b.op('Relu', [conv])], { axis: 1 });
  const out = Math.floor((size - 3) / 2) + 1;
  const features = 4 * out * out;
  const fc = Array.from({ length: classes * features }, (_, i) => Math.cos(0.37 * i + 1) * 0.2);
  b.node('Gemm', [flat, b.constantFloat(fc, [classes, features]), b.constantFloat(new Array(classes).fill(0))], { transB: 1 }, { outputs: ['logits'] });
  b.output('logits', 'float32', ['N', classes]);
  const path = join(dir, `${name}.onnx`);
  writeFileSync(path, b.build(name).toBytes());
  return path;
}

describe('input geometry without data', () => {
  test('default: pixels in [0, 1] per channel, layout and size from the model input', async () => {
    const model = await loadModel(tinyModel('rgb', 3, 32, 10));
    const g = dataFreeGeometry({ model });
    assert.deepEqual([g.layout, g.channels, g.height, g.width], ['NCHW', 3, 32, 32]);
    assert.deepEqual(g.range, { min: [0, 0, 0], max: [1, 1, 1] });
    const nhwc = dataFreeGeometry({ model: await loadModel(tinyModel('rgb-nhwc', 3, 16, 10, 'NHWC')) });
    assert.deepEqual([nhwc.layout, nhwc.channels, nhwc.height], ['NHWC', 3, 16]);
  });

  test('--mean/--std: the preprocessed image of [0, 1]; --scale: stored pixels 0..255 times the scale', async () => {
    const model = await loadModel(tinyModel('rgb', 3, 32, 10));
    const g = dataFreeGeometry({ model }, { mean: [0.5, 0.4, 0.3], std: [0.25, 0.2, 0.1] });
    assert.deepEqual(g.range.min.map((v) => +v.toFixed(6)), [-2, -2, -3]);
    assert.deepEqual(g.range.max.map((v) => +v.toFixed(6)), [2, 3, 7]);
    const raw = dataFreeGeometry({ model }, { scale: 1 });
    assert.deepEqual(raw.range, { min: [0, 0, 0], max: [255, 255, 255] });
    assert.throws(() => dataFreeGeometry({ model }, { mean: [0.5, 0.5] }), /mean has 2 values but the model takes 3 channels/);
  });
});

describe('the order-statistic test', () => {
  test('one class far above the others: small p, that class is the target', () => {
    const t = testMargins([14.2, 15.1, 13.8, 16.0, 14.9, 15.5, 13.1, 14.4, 15.9, 41.0]);
    assert.equal(t.target, 9);
    assert.ok(t.pValue < 1e-6, String(t.pValue));
    assert.ok(t.anomalyIndex[9] > 10);
  });

  test('no class apart: large p', () => {
    const t = testMargins([14.2, 15.1, 13.8, 16.0, 14.9, 15.5, 13.1, 14.4, 15.9, 16.4]);
    assert.equal(t.target, 9);
    assert.ok(t.pValue > 0.2, String(t.pValue));
  });

  test('the others all equal: p is 0 when the largest is above them, 1 when it is not', () => {
    assert.equal(testMargins([5, 5, 5, 9]).pValue, 0);
    assert.equal(testMargins([5, 5, 5, 5]).pValue, 1);
  });
});

describe('options', () => {
  test('the threshold is read from one place (engine/analyses/thresholds.ts) unless the option overrides it', () => {
    assert.equal(mmbdOptions({}).threshold, MMBD_THRESHOLD.value);
    assert.equal(mmbdOptions({ threshold: 0.2 }).threshold, 0.2);
  });

  test('bad values name the option', () => {
    assert.throws(() => mmbdOptions({ starts: 0 }), /option mmbd\.starts must be a positive number/);
    assert.throws(() => mmbdOptions({ optimizer: 'lbfgs' }), /option mmbd\.optimizer must be adam or sgd/);
    assert.throws(() => mmbdOptions({ preset: 'fast' }), /option mmbd\.preset must be default or reference/);
  });

  test("preset=reference: the authors' settings", () => {
    assert.deepEqual(mmbdOptions({ preset: 'reference' }), { starts: 30, steps: 300, lr: 0.01, tolerance: 1e-5, threshold: MMBD_THRESHOLD.value, maxBatch: 512, optimizer: 'sgd' });
  });
});

describe('scans with no data', () => {
  test('MM-BD is the default detector only without labelled data; asked for by name it runs with data too', async () => {
    const model = await loadModel(join(fmnist.clean, 'model.onnx'));
    const data = loadDataset({ path: join(fmnist.data, 'clean.npz') }, imageInputOf(model.onnx));
    assert.ok(resolveMethods(undefined).some((a) => a.id === 'mmbd'));
    const withData = resolveMethods(undefined, data).map((a) => a.id);
    assert.ok(!withData.includes('mmbd') && withData.includes('pairs'), withData.join(', '));
    assert.deepEqual(resolveMethods(['mmbd'], data).map((a) => a.id), ['mmbd']);
  });

  test('the clean fixture: MM-BD runs by default and decides clean; evidence, threshold and labels in the report', async () => {
    const model = await loadModel(join(fmnist.clean, 'model.onnx'));
    const { report } = await scan(model, { runtime });
    assert.equal(report.verdict, 'clean');
    const run = report.methods.find((m) => m.method === 'mmbd')!;
    assert.equal(run.status, 'ran');
    assert.equal(run.threshold, MMBD_THRESHOLD.value);
    // 10 classes × 10 starts × at most 100 steps (a class whose margins stop moving stops early).
    assert.ok(run.gradientEvaluations! > 10 * 10 * 20 && run.gradientEvaluations! <= 10 * 10 * 100, String(run.gradientEvaluations));
    assert.ok(run.notes?.some((n) => /deviations from the authors' code/.test(n)));
    const [e] = report.evidence.filter((x) => x.method === 'mmbd');
    assert.equal(e.flagged, false);
    assert.equal(e.direction, 'below');
    assert.equal(e.threshold, MMBD_THRESHOLD.value);
    assert.equal(e.thresholdSource, MMBD_THRESHOLD.source);
    assert.ok(e.value >= MMBD_THRESHOLD.value, `p ${e.value}`);
    assert.match(e.summary, /^mmbd: class \d maximum margin [\d.]+ \(next [\d.]+\), p [\d.e-]+ ≥ /);
    const labels = report.labels.filter((l) => l.method === 'mmbd');
    assert.equal(labels.length, 10);
    assert.ok(labels.every((l) => Number.isFinite(l.statistic) && !l.flagged));
    assert.ok(!report.findings.some((f) => f.code === 'BL006'));
  });

  test('the prunable BadNets fixture (target 0): class 0 leads, p far below the paper\'s 0.05 but not below the calibrated threshold; at --option mmbd.threshold=1e-4 it is flagged and BL006 names the class and the p-value', async () => {
    const model = await loadModel(join(fmnist.badnetsPrunable, 'model.onnx'));
    const calibrated = (await scan(model, { runtime, methods: ['mmbd'] })).report;
    assert.equal(calibrated.verdict, 'clean');
    assert.equal(calibrated.evidence[0].flagged, false);
    assert.ok(calibrated.evidence[0].value < 1e-4 && calibrated.evidence[0].value >= MMBD_THRESHOLD.value, `p ${calibrated.evidence[0].value}`);
    assert.equal(calibrated.labels.reduce((a, b) => (b.statistic! > a.statistic! ? b : a)).label, 0);
    const { report } = await scan(model, { runtime, methods: ['mmbd'], methodOptions: { mmbd: { threshold: 1e-4 } } });
    assert.equal(report.verdict, 'backdoored');
    assert.deepEqual(report.targets, [0]);
    const [e] = report.evidence;
    assert.equal(e.flagged, true);
    assert.ok(e.value < 1e-4, `p ${e.value}`);
    assert.deepEqual(e.targets, [0]);
    const bl004 = report.findings.filter((f) => f.code === 'BL006');
    assert.equal(bl004.length, 1);
    assert.equal(bl004[0].severity, 'error');
    assert.equal(bl004[0].location?.label, 0);
    assert.match(bl004[0].message, /^Class 0 reaches an anomalously large logit margin without data: [\d.]+ against [\d.]+ for the next class \(p [\d.e-]+ < [\d.]+, gamma null of the other 9\)\. Target class 0\.$/);
    assert.deepEqual(report.labels.filter((l) => l.flagged).map((l) => l.label), [0]);
  });

  test('a BN-folded export gives the same margins as the BN-kept one', async () => {
    const options = { methods: ['mmbd'], methodOptions: { mmbd: { steps: 15, starts: 3 } } };
    const kept = await scan(await loadModel(join(fmnist.badnets, 'model.onnx')), { runtime, ...options });
    const folded = await scan(await loadModel(join(fmnist.badnets, 'model.folded.onnx')), { runtime, ...options });
    const a = kept.report.labels.map((l) => l.statistic!), b = folded.report.labels.map((l) => l.statistic!);
    assert.equal(a.length, 10);
    a.forEach((v, k) => assert.ok(Math.abs(v - b[k]) <= 1e-2 * Math.max(1, Math.abs(v)), `class ${k}: ${v} vs ${b[k]}`));
  });

  test('3×32×32 input: every class gets a statistic, the verdict comes from the test', async () => {
    const model = await loadModel(tinyModel('rgb', 3, 32, 10));
    const { report } = await scan(model, { runtime, methods: ['mmbd'], methodOptions: { mmbd: { steps: 10, starts: 4 } } });
    assert.notEqual(report.verdict, 'inconclusive');
    assert.equal(report.labels.length, 10);
    assert.equal(report.methods[0].gradientEvaluations, 10 * 4 * 10);
    assert.match(report.methods[0].notes![0], /input range \[0\.000, 1\.000\] \[0\.000, 1\.000\] \[0\.000, 1\.000\]/);
  });

  test('a model with one output: a one-line reason, no verdict', async () => {
    const model = await loadModel(tinyModel('one-output', 1, 8, 1));
    const { report } = await scan(model, { runtime });
    const run = report.methods.find((m) => m.method === 'mmbd')!;
    assert.equal(run.status, 'failed');
    assert.match(run.reason!, /^MM-BD needs a classifier with at least 4 classes .*one-output\.onnx has 1 output$/);
    assert.ok(report.findings.some((f) => f.code === 'BL022' && f.method === 'mmbd' && !f.message.includes('\n')));
    assert.equal(report.verdict, 'inconclusive');
  });
});
