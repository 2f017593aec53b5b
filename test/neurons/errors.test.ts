/** Bad input gives errors a user can act on: wrong data shape, a model without conv or BN, labels out of range. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { applyFix, BackdoorLensError, loadDataset, loadModel, Runtime, scan } from '../../engine';
import { analyses } from '../../engine/analyses/registry';
import type { AnalysisContext } from '../../engine/analyses/types';
import type { Dataset } from '../../engine/data/types';
import { imageInputOf } from '../../engine/evaluate';
import type { LoadedModel } from '../../engine/formats/types';
import { cli, fmnist, tempDir } from '../helpers';
import { asLoaded, linearOnly } from './graphs';

const runtime = new Runtime();
after(() => runtime.dispose());
const neuronMethods = ['clp', 'bnp', 'ep', 'fp', 'anp'];

function ctx(model: LoadedModel, data: Dataset | undefined, dataKind: 'clean' | 'mixed' = 'clean'): AnalysisContext {
  return { model, runtime, data, dataKind, numClasses: model.numClasses, thresholdMultiplier: 3, seed: 0, batchSize: 64, options: { iterations: 2 }, signal: new AbortController().signal, progress: () => {}, previous: new Map() };
}

async function rejects(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BackdoorLensError, `a BackdoorLensError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('bad input', () => {
  test('data whose samples do not fit the model input: bad-data naming both shapes', async () => {
    const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const good = loadDataset({ path: join(fmnist.data, 'clean.npz') }, imageInputOf(model.onnx));
    const wrong: Dataset = { ...good, n: 10, dims: [10, 1, 14, 56], x: good.x.subarray(0, 10 * 784) };
    for (const id of ['bnp', 'ep', 'fp', 'anp']) {
      const a = analyses.find((x) => x.id === id)!;
      await rejects(a.run(ctx(model, wrong, id === 'ep' ? 'mixed' : 'clean')), 'bad-data', /shape \[1, 14, 56\].*expects \[1, 28, 28\]/);
    }
  });

  test('a model without BN or conv: every neuron method says why it cannot run', async () => {
    const model = asLoaded(linearOnly(), 'linear.onnx');
    for (const id of neuronMethods) {
      const a = analyses.find((x) => x.id === id)!;
      assert.match(a.notApplicable!(model) ?? '', /no (convolution|BatchNormalization)/, id);
    }
    await rejects(analyses.find((x) => x.id === 'clp')!.run(ctx(model, undefined)), 'unsupported-model', /CLP cannot run: the model has no convolution/);
    const r = await scan(model, { runtime, methods: ['clp'] });
    assert.equal(r.report.methods[0].status, 'skipped');
    assert.match(r.report.findings.find((f) => f.code === 'BL021')!.message, /no convolution/);
    await rejects(applyFix(model, { method: 'clp', runtime }), 'unsupported-model', /fix 'clp' does not apply: the model has no convolution/);
  });

  test('labels out of range: bad-data naming the sample and the class range', async () => {
    const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const good = loadDataset({ path: join(fmnist.data, 'clean.npz') }, imageInputOf(model.onnx));
    const labels = Int32Array.from(good.labels!);
    labels[7] = 12;
    const bad: Dataset = { ...good, labels };
    for (const id of ['fp', 'anp']) {
      await rejects(analyses.find((x) => x.id === id)!.run(ctx(model, bad)), 'bad-data', /label 12 of sample 7 is out of range: .* has 10 classes \(0 to 9\)/);
    }
    labels[7] = -1;
    await rejects(analyses.find((x) => x.id === 'fp')!.run(ctx(model, bad)), 'bad-data', /label -1 of sample 7/);
  });

  test('bad method options are usage errors', async () => {
    const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const data = loadDataset({ path: join(fmnist.data, 'clean.npz') }, imageInputOf(model.onnx));
    const c = { ...ctx(model, data), options: { samples: -3 } };
    await rejects(analyses.find((x) => x.id === 'bnp')!.run(c), 'usage', /option bnp\.samples must be a whole number ≥ 0/);
    await rejects(applyFix(model, { method: 'bnp', runtime, data, options: { budget: 'lots' } }), 'usage', /option bnp\.budget must be a number/);
  });

  test('the CLI maps them to exit codes with one-line messages', async () => {
    const dir = tempDir();
    const r = await cli('fix', join(fmnist.badnets, 'model.onnx'), '--method', 'fp', '--data', join(fmnist.data, 'clean.npz'), '--size', '14x56', '--out', join(dir, 'x.onnx'));
    assert.equal(r.exitCode, 2, r.stdout + r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });
});
