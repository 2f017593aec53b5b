/** ANP: the mask gradients through the gradient graphs, the optimisation, and a threshold chosen from clean data only. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { evaluate, loadDataset, loadModel, Runtime, scan } from '../../engine';
import { anp, AnpProblem, anpSettings, optimiseMasks, settledPruning, type ChannelValues, type PruningCheck } from '../../engine/analyses/methods/anp';
import { preActivationLayers } from '../../engine/analyses/neurons/layers';
import { pruneNeurons } from '../../engine/analyses/neurons/prune';
import type { AnalysisContext } from '../../engine/analyses/types';
import { subset } from '../../engine/data/types';
import { imageInputOf } from '../../engine/evaluate';
import { fmnist } from '../helpers';
import { values } from './graphs';

const runtime = new Runtime();
after(() => runtime.dispose());

async function fixture(file = 'model.onnx') {
  const model = await loadModel(join(fmnist.badnets, file));
  const clean = loadDataset({ path: join(fmnist.data, 'clean.npz') }, imageInputOf(model.onnx));
  return { model, clean };
}

function ctx(model: AnalysisContext['model'], data: AnalysisContext['data'], options: Record<string, unknown>, seed = 0): AnalysisContext {
  return { model, runtime, data, dataKind: 'clean', numClasses: 10, thresholdMultiplier: 3, seed, batchSize: 250, options, signal: new AbortController().signal, progress: () => {}, previous: new Map() };
}

describe('ANP', () => {
  for (const file of ['model.onnx', 'model.folded.onnx']) {
    test(`${file}: ∂L/∂m and ∂L/∂ξ from the gate gradients match finite differences of the masked, perturbed loss`, async () => {
      const { model, clean } = await fixture(file);
      const layers = preActivationLayers(model.onnx);
      const problem = await AnpProblem.create(runtime, model.onnx, layers);
      const batch = subset(clean, Array.from({ length: 16 }, (_, i) => i));
      const make = (seed: number, f: (v: number) => number): ChannelValues => new Map(layers.map((l, i) => [l.name, Float32Array.from(values(l.channels, seed + i), f)]));
      const mask = make(1, (v) => 0.75 + 0.2 * v), delta = make(10, (v) => 0.3 * v), xi = make(20, (v) => 0.3 * v);
      const g = await problem.gradients(batch, mask, { delta, xi });
      const h = 2e-3;
      for (const [layer, channel] of [[layers[0].name, 3], [layers[2].name, 17], [layers[1].name, 30]] as const) {
        const at = async (values: ChannelValues, which: 'mask' | 'xi', step: number) => {
          const copy: ChannelValues = new Map([...values].map(([k, v]) => [k, Float32Array.from(v)]));
          copy.get(layer)![channel] += step;
          return (await problem.gradients(batch, which === 'mask' ? copy : mask, { delta, xi: which === 'xi' ? copy : xi })).loss;
        };
        const numMask = ((await at(mask, 'mask', h)) - (await at(mask, 'mask', -h))) / (2 * h);
        const numXi = ((await at(xi, 'xi', h)) - (await at(xi, 'xi', -h))) / (2 * h);
        const gm = g.mask.get(layer)![channel], gx = g.xi.get(layer)![channel];
        assert.ok(Math.abs(gm - numMask) <= 2e-3 + 0.02 * Math.abs(numMask), `${layer}[${channel}] ∂L/∂m ${gm} vs ${numMask}`);
        assert.ok(Math.abs(gx - numXi) <= 2e-3 + 0.02 * Math.abs(numXi), `${layer}[${channel}] ∂L/∂ξ ${gx} vs ${numXi}`);
      }
    });
  }

  test('the masks stay in [0, 1], move away from 1, and the same seed gives the same masks', async () => {
    const { model, clean } = await fixture();
    const layers = preActivationLayers(model.onnx);
    const data = subset(clean, Array.from({ length: 64 }, (_, i) => i));
    const s = { ...anpSettings({}), iterations: 4, batchSize: 32 };
    const c = ctx(model, data, {});
    const a = await optimiseMasks(model.onnx, layers, data, s, c);
    const b = await optimiseMasks(model.onnx, layers, data, s, c);
    const other = await optimiseMasks(model.onnx, layers, data, s, { ...c, seed: 7 });
    const flat = (m: ChannelValues) => [...m.values()].flatMap((v) => Array.from(v));
    assert.deepEqual(flat(a.masks), flat(b.masks));
    assert.notDeepEqual(flat(a.masks), flat(other.masks));
    assert.ok(flat(a.masks).every((v) => v >= 0 && v <= 1));
    assert.ok(flat(a.masks).some((v) => v < 1));
    assert.equal(a.gradientEvaluations, 4 * 2, 'interactive: the natural loss (whose gradient also gives the ascent step) and the robust loss per iteration');
    const reference = await optimiseMasks(model.onnx, layers, data, { ...s, schedule: 'reference' }, c);
    assert.equal(reference.gradientEvaluations, 4 * 3, 'reference: one ascent step, the natural and the robust loss per iteration');
    assert.equal(reference.stop, 'the 4 iterations of the reference schedule');
  });

  test('the threshold is chosen on the clean data: the largest sweep value within the accuracy budget', async () => {
    const { model, clean } = await fixture();
    const data = subset(clean, Array.from({ length: 300 }, (_, i) => i));
    const out = await anp.run(ctx(model, data, { iterations: 30, budget: 2 }));
    const notes = out.notes!.join('\n');
    const m = /mask ≤ ([\d.]+): the largest threshold of the sweep 0, 0\.05, …, 0\.9 that keeps accuracy on the clean data within 2\.0 points/.exec(notes);
    assert.ok(m, notes);
    const threshold = Number(m[1]);
    const flagged = out.neurons!.filter((n) => n.flagged);
    assert.ok(flagged.length > 0);
    assert.ok(out.neurons!.every((n) => n.threshold === threshold && n.flagged === n.score <= threshold));
    const before = (await evaluate(model.onnx, data, runtime)).accuracy!;
    const after = (await evaluate(pruneNeurons(model.onnx, flagged), data, runtime)).accuracy!;
    assert.ok(before - after <= 0.02 + 1e-9, `clean accuracy ${before} → ${after}`);
    assert.equal(out.gradientEvaluations, 60);
    assert.match(notes, /Chosen from clean data only/);
  });

  test('the interactive schedule stops once the pruning at the clean-data threshold stops changing', async () => {
    const { model, clean } = await fixture();
    const layers = preActivationLayers(model.onnx);
    const data = subset(clean, Array.from({ length: 200 }, (_, i) => i));
    const s = { ...anpSettings({}), batchSize: 64, checkEvery: 5, patience: 2, minIterations: 10, iterations: 400 };
    const r = await optimiseMasks(model.onnx, layers, data, s, { runtime, seed: 0, signal: new AbortController().signal, progress: () => {}, batchSize: 200 });
    assert.ok(r.iterations < 400 && r.iterations >= 15 && r.iterations % 5 === 0, `stopped after ${r.iterations}`);
    assert.match(r.stop, /^the pruning at the clean-data threshold \(mask ≤ [\d.-]+\) stayed the same for 2 checks 5 iterations apart, after \d+ iterations$/);
    assert.equal(r.gradientEvaluations, 2 * r.iterations);
  });

  test('the stopping rule needs the same threshold and the same channels for `patience` checks in a row, after minIterations', () => {
    const at = (iteration: number, threshold: number, channels: number[]): PruningCheck => ({ iteration, threshold, pruned: channels.map((channel) => ({ layer: 'bn1', channel })) });
    const s = { patience: 2, minIterations: 100 };
    // Unchanged from 50 on, but the rule may only stop at 100 or later.
    assert.equal(settledPruning([at(50, 0.2, [1, 2]), at(100, 0.2, [1, 2]), at(150, 0.2, [1, 2])], s), 150);
    assert.equal(settledPruning([at(100, 0.2, [1, 2]), at(150, 0.2, [1, 2]), at(200, 0.2, [1, 2])], s), 200);
    // A new channel, or the same channels under another threshold, starts the count again.
    assert.equal(settledPruning([at(100, 0.2, [1]), at(150, 0.2, [1, 2]), at(200, 0.2, [1, 2])], s), undefined);
    assert.equal(settledPruning([at(100, 0.2, [1, 2]), at(150, 0.25, [1, 2]), at(200, 0.2, [1, 2]), at(250, 0.2, [1, 2]), at(300, 0.2, [1, 2])], s), 300);
  });

  test('a scan runs ANP when asked, with BL013 findings and its gradient evaluations', async () => {
    const { model, clean } = await fixture();
    const data = subset(clean, Array.from({ length: 200 }, (_, i) => i));
    const { report } = await scan(model, { runtime, data, methods: ['anp'], methodOptions: { anp: { iterations: 10 } } });
    const run = report.methods.find((r) => r.method === 'anp')!;
    assert.equal(run.status, 'ran', run.reason);
    assert.equal(run.gradientEvaluations, 20);
    assert.equal(run.direction, 'below');
    assert.ok(report.findings.some((f) => f.code === 'BL013' && f.severity === 'information'));
    assert.equal(report.neurons.filter((n) => n.method === 'anp').length, 112);
  });
});
