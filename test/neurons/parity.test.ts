/**
 * The engine's CLP bounds, BNP KL values and EP entropies against the committed values that
 * tools/fixtures/neuron_reference.py computes with PyTorch and the authors' formulas: relative
 * error ≤ 1e-3 and identical flagged sets (at u = 3, and at u = 2 where the sets are not empty).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadDataset, loadModel, Runtime } from '../../engine';
import { bnp } from '../../engine/analyses/methods/bnp';
import { clp } from '../../engine/analyses/methods/clp';
import { ep } from '../../engine/analyses/methods/ep';
import type { Analysis, AnalysisContext } from '../../engine/analyses/types';
import type { Dataset } from '../../engine/data/types';
import { imageInputOf } from '../../engine/evaluate';
import type { LoadedModel } from '../../engine/formats/types';
import type { NeuronScore } from '../../engine/report/types';
import { fixtures, fmnist } from '../helpers';

interface LayerRef {
  scores: number[];
  threshold: number;
  flagged: number[];
  thresholdLowU: number;
  flaggedLowU: number[];
}
type MethodRef = Record<string, LayerRef>;
interface Reference {
  u: number;
  uLow: number;
  bnpSamples: number;
  models: Record<'badnets' | 'clean', { clp: MethodRef; clpFolded: MethodRef; bnp: MethodRef; ep: MethodRef }>;
}

const reference = JSON.parse(readFileSync(join(fixtures, 'neurons/reference.json'), 'utf8')) as Reference;
const runtime = new Runtime();
after(() => runtime.dispose());

function context(model: LoadedModel, data: Dataset | undefined, thresholdMultiplier: number, dataKind: 'clean' | 'mixed' = 'clean'): AnalysisContext {
  return { model, runtime, data, dataKind, numClasses: model.numClasses, thresholdMultiplier, seed: 0, batchSize: 128, options: {}, signal: new AbortController().signal, progress: () => {}, previous: new Map() };
}

function relativeError(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
}

function compare(neurons: NeuronScore[], ref: MethodRef, what: string, which: 'flagged' | 'flaggedLowU' = 'flagged'): void {
  assert.deepEqual([...new Set(neurons.map((n) => n.layer))], Object.keys(ref), `${what}: layers`);
  for (const [layer, r] of Object.entries(ref)) {
    const mine = neurons.filter((n) => n.layer === layer).sort((a, b) => a.channel - b.channel);
    assert.equal(mine.length, r.scores.length, `${what} ${layer}: channel count`);
    mine.forEach((n, c) => assert.ok(relativeError(n.score, r.scores[c]) <= 1e-3, `${what} ${layer}[${c}]: ${n.score} vs reference ${r.scores[c]}`));
    const threshold = which === 'flagged' ? r.threshold : r.thresholdLowU;
    assert.ok(relativeError(mine[0].threshold, threshold) <= 1e-3, `${what} ${layer} threshold ${mine[0].threshold} vs ${threshold}`);
    assert.deepEqual(mine.filter((n) => n.flagged).map((n) => n.channel), r[which], `${what} ${layer}: flagged set`);
  }
}

async function scores(a: Analysis, ctx: AnalysisContext): Promise<NeuronScore[]> {
  return (await a.run(ctx)).neurons ?? [];
}

for (const name of ['badnets', 'clean'] as const) {
  describe(`${name}: parity with the PyTorch reference`, () => {
    const ref = reference.models[name];
    const open = async (file = 'model.onnx') => loadModel(join(fmnist[name], file));
    const data = (model: LoadedModel, set: string) => loadDataset({ path: join(fmnist.data, `${set}.npz`) }, imageInputOf(model.onnx));

    test('CLP bounds and flags (BN kept; u = 3 and u = 2)', async () => {
      const model = await open();
      compare(await scores(clp, context(model, undefined, reference.u)), ref.clp, 'clp');
      compare(await scores(clp, context(model, undefined, reference.uLow)), ref.clp, 'clp u=2', 'flaggedLowU');
    });

    test('CLP on the BN-folded export reads the folded weights (γ/√(var+ε))', async () => {
      const model = await open('model.folded.onnx');
      const neurons = await scores(clp, context(model, undefined, reference.u));
      // The folded export names layers by conv; the reference by the BN each conv feeds.
      const renamed = neurons.map((n) => ({ ...n, layer: n.layer.replace(/^conv/, 'bn') }));
      compare(renamed, ref.clpFolded, 'clp folded');
      compare(await scores(clp, context(model, undefined, reference.uLow)).then((ns) => ns.map((n) => ({ ...n, layer: n.layer.replace(/^conv/, 'bn') }))), ref.clpFolded, 'clp folded u=2', 'flaggedLowU');
    });

    test(`BNP KL divergences and flags on the first ${reference.bnpSamples} clean images`, async () => {
      const model = await open();
      const clean = data(model, 'clean');
      compare(await scores(bnp, context(model, clean, reference.u)), ref.bnp, 'bnp');
      compare(await scores(bnp, context(model, clean, reference.uLow)), ref.bnp, 'bnp u=2', 'flaggedLowU');
    });

    test('EP entropies and flags on the poisoned sample set', async () => {
      const model = await open();
      const mixed = data(model, 'poisoned-sample');
      compare(await scores(ep, context(model, mixed, reference.u, 'mixed')), ref.ep, 'ep');
      compare(await scores(ep, context(model, mixed, reference.uLow, 'mixed')), ref.ep, 'ep u=2', 'flaggedLowU');
    });
  });
}
