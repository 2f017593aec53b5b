/** Which neuron methods a scan runs for the data it has, what it says about the others, and the findings they raise. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadDataset, loadModel, Runtime, scan } from '../../engine';
import { imageInputOf } from '../../engine/evaluate';
import type { ScanReport } from '../../engine/report/types';
import { fmnist } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());
const neuronMethods = new Set(['clp', 'bnp', 'ep', 'fp', 'anp']);

function statusOf(report: ScanReport): Record<string, string> {
  return Object.fromEntries(report.methods.filter((m) => neuronMethods.has(m.method)).map((m) => [m.method, m.status]));
}

async function setup(file = 'model.onnx', set?: string) {
  const model = await loadModel(join(fmnist.badnets, file));
  const data = set ? loadDataset({ path: join(fmnist.data, `${set}.npz`) }, imageInputOf(model.onnx)) : undefined;
  return { model, data };
}

describe('scan with the neuron methods', () => {
  test('no data: CLP only; the data-driven methods are skipped with the data they need', async () => {
    const { model } = await setup();
    // The neuron methods only (MM-BD, the data-free detector, has its own tests in test/datafree).
    const { report } = await scan(model, { runtime, methods: ['clp', 'bnp', 'ep', 'fp'] });
    assert.deepEqual(statusOf(report), { clp: 'ran', bnp: 'skipped', ep: 'skipped', fp: 'skipped' });
    assert.match(report.methods.find((m) => m.method === 'bnp')!.reason!, /needs a clean sample set/);
    assert.deepEqual([...new Set(report.neurons.map((n) => n.method))], ['clp']);
    assert.equal(report.verdict, 'inconclusive', 'neuron flags alone never make a verdict');
    assert.ok(report.findings.some((f) => f.code === 'BL010' && f.severity === 'information'), 'CLP summary');
  });

  test('clean labelled data: CLP, BNP and Fine-Pruning run, EP needs a mixed set; per-layer findings name the channels', async () => {
    const { model, data } = await setup('model.onnx', 'clean');
    // Only the neuron methods: without a detector the verdict must stay inconclusive, whatever they flag.
    const { report } = await scan(model, { runtime, data, methods: ['clp', 'bnp', 'ep', 'fp'] });
    assert.deepEqual(statusOf(report), { clp: 'ran', bnp: 'ran', ep: 'skipped', fp: 'ran' });
    assert.match(report.methods.find((m) => m.method === 'ep')!.reason!, /--data-kind mixed/);
    const bnpLayers = report.findings.filter((f) => f.code === 'BL011' && f.severity === 'warning');
    assert.deepEqual(bnpLayers.map((f) => [f.location?.layer, f.location?.channels]), [['bn1', [4]], ['bn2', [0]], ['bn3', [16, 61]]]);
    assert.match(bnpLayers[2].message, /2 of 64 channels of bn3 .* above the layer threshold [\d.]+ \(KL > mean \+ 3·std per layer\): channel 16 \([\d.]+\), 61/);
    const flagged = report.neurons.filter((n) => n.method === 'bnp' && n.flagged);
    assert.equal(flagged.length, 4);
    assert.ok(flagged.every((n) => n.score > n.threshold));
    assert.equal(report.methods.find((m) => m.method === 'bnp')!.direction, 'above');
    assert.equal(report.methods.find((m) => m.method === 'fp')!.direction, 'below');
    assert.ok(report.findings.some((f) => f.code === 'BL014' && f.severity === 'warning' && f.location?.layer === 'bn3'));
    assert.equal(report.verdict, 'inconclusive');
  });

  test('a mixed set: EP runs; the methods that need clean data are skipped', async () => {
    const { model, data } = await setup('model.onnx', 'poisoned-sample');
    const { report } = await scan(model, { runtime, data, dataKind: 'mixed' });
    assert.deepEqual(statusOf(report), { clp: 'ran', bnp: 'skipped', ep: 'ran', fp: 'skipped' });
    assert.match(report.methods.find((m) => m.method === 'bnp')!.reason!, /declared mixed/);
    assert.ok(report.neurons.some((n) => n.method === 'ep'));
  });

  test('a BN-folded export: BL020 explains how to re-export; CLP reads the folded weights', async () => {
    const { model, data } = await setup('model.folded.onnx', 'clean');
    const { report } = await scan(model, { runtime, data, methods: ['clp', 'bnp'] });
    assert.deepEqual(statusOf(report), { clp: 'ran', bnp: 'skipped' });
    const bl020 = report.findings.filter((f) => f.code === 'BL020');
    assert.equal(bl020.length, 1);
    assert.equal(bl020[0].severity, 'information');
    assert.match(bl020[0].message, /training=torch\.onnx\.TrainingMode\.PRESERVE, do_constant_folding=False/);
    assert.match(bl020[0].message, /state_dict/);
    assert.ok(!report.findings.some((f) => f.code === 'BL021' && f.method === 'bnp'), 'no second finding for the same skip');
    assert.deepEqual([...new Set(report.neurons.map((n) => n.layer))], ['conv1', 'conv2', 'conv3']);
  });

  test('EP on a BN-folded export reads the conv outputs and says so', async () => {
    const { model, data } = await setup('model.folded.onnx', 'poisoned-sample');
    const { report } = await scan(model, { runtime, data, dataKind: 'mixed', methods: ['ep'] });
    const run = report.methods.find((m) => m.method === 'ep')!;
    assert.equal(run.status, 'ran', run.reason);
    assert.match(run.notes!.join(' '), /pre-activation read is the conv output/);
    assert.deepEqual([...new Set(report.neurons.map((n) => n.layer))], ['conv1', 'conv2', 'conv3']);
  });

  test('the threshold multiplier, for the scan or as a method option, reaches the analyses', async () => {
    const { model } = await setup();
    const at3 = (await scan(model, { runtime, methods: ['clp'] })).report;
    const at2 = (await scan(model, { runtime, methods: ['clp'], methodOptions: { clp: { thresholdMultiplier: 2 } } })).report;
    const scanAt2 = (await scan(model, { runtime, methods: ['clp'], thresholdMultiplier: 2, methodOptions: { bnp: { thresholdMultiplier: 5 } } })).report;
    assert.equal(at3.neurons.filter((n) => n.flagged).length, 0);
    assert.equal(at3.methods[0].thresholdMultiplier, 3);
    assert.deepEqual(at2.neurons.filter((n) => n.flagged).map((n) => `${n.layer}[${n.channel}]`), ['bn2[31]', 'bn3[24]', 'bn3[55]']);
    assert.equal(at2.methods[0].thresholdMultiplier, 2);
    assert.deepEqual(scanAt2.neurons.filter((n) => n.flagged).map((n) => `${n.layer}[${n.channel}]`), ['bn2[31]', 'bn3[24]', 'bn3[55]']);
    assert.equal(scanAt2.methods[0].thresholdMultiplier, 2);
  });
});
