import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadDataset, loadModel, predict, Runtime } from '../../engine';
import { bnp } from '../../engine/analyses/methods/bnp';
import { clp } from '../../engine/analyses/methods/clp';
import { gateLayers, gatedPredictions, pruningGates } from '../../engine/analyses/neurons/gates';
import { convNeuronLayers, preActivationLayers } from '../../engine/analyses/neurons/layers';
import { prunableLayers, pruneNeurons } from '../../engine/analyses/neurons/prune';
import type { AnalysisContext } from '../../engine/analyses/types';
import type { Dataset } from '../../engine/data/types';
import { imageInputOf } from '../../engine/evaluate';
import type { LoadedModel } from '../../engine/formats/types';
import { fmnist } from '../helpers';
import { asLoaded, preActBlock, values } from './graphs';

const runtime = new Runtime();
after(() => runtime.dispose());

function ctx(model: LoadedModel, data?: Dataset): AnalysisContext {
  return { model, runtime, data, dataKind: 'clean', numClasses: model.numClasses, thresholdMultiplier: 3, seed: 0, batchSize: 16, options: {}, signal: new AbortController().signal, progress: () => {}, previous: new Map() };
}

function randomImages(n: number, dims: number[], seed: number): Dataset {
  const per = dims.reduce((a, b) => a * b, 1);
  return {
    source: 'random', n, x: Float32Array.from(values(n * per, seed), (v) => (v + 1) / 2), dims: [n, ...dims],
    preprocess: { layout: 'NCHW', channels: dims[0], height: dims[1], width: dims[2], scale: 1, mean: [0], std: [1], resized: false, sourceLayout: 'NCHW' },
  };
}

describe('pre-activation nets: layers follow the graph, not the registration order', () => {
  const net = preActBlock();
  const model = asLoaded(net.model);

  test('CLP pairs each BN with the conv that feeds it; a conv without BN is its own layer; a BN fed by Add gets no conv', async () => {
    const out = await clp.run(ctx(model));
    const layers = [...new Set(out.neurons!.map((n) => n.layer))];
    assert.deepEqual(layers, ['bnP', 'bnQ', 'conv2']);
    const expect = (conv: 'conv0' | 'conv1' | 'conv2', bn?: 'bnP' | 'bnQ') =>
      net.norms[conv].map((s, k) => s * (bn ? Math.abs(net.bn[bn].gamma[k] / Math.sqrt(net.bn[bn].variance[k])) : 1));
    for (const [layer, want] of [['bnP', expect('conv0', 'bnP')], ['bnQ', expect('conv1', 'bnQ')], ['conv2', expect('conv2')]] as const) {
      const got = out.neurons!.filter((n) => n.layer === layer).map((n) => n.score);
      got.forEach((g, k) => assert.ok(Math.abs(g - want[k]) <= 1e-5 * want[k], `${layer}[${k}]: ${g} vs ${want[k]}`));
    }
    assert.match(out.notes!.join(' '), /conv2.*own weights/);
  });

  test('BNP scores every BN, including the one after the residual Add', async () => {
    const out = await bnp.run(ctx(model, randomImages(12, [2, 6, 6], 9)));
    assert.deepEqual([...new Set(out.neurons!.map((n) => n.layer))], ['bnP', 'bnQ', 'bnR']);
    assert.ok(out.neurons!.every((n) => Number.isFinite(n.score) && n.score >= 0));
  });

  test('pruning zeroes γ and β of a BN channel, or the filter of a conv without BN, in a copy', () => {
    const before = net.model.toBytes();
    const pruned = pruneNeurons(net.model, [{ layer: 'bnR', channel: 1 }, { layer: 'conv2', channel: 0 }]);
    assert.deepEqual(net.model.toBytes(), before, 'the input model is unchanged');
    const gamma = pruned.initializer('bnR.weight')!.data as Float32Array, beta = pruned.initializer('bnR.bias')!.data as Float32Array;
    assert.equal(gamma[1], 0);
    assert.equal(beta[1], 0);
    assert.notEqual(gamma[0], 0);
    const w = pruned.initializer('conv2.weight')!.data as Float32Array;
    assert.ok(w.subarray(0, 27).every((v) => v === 0));
    assert.ok(w.subarray(27).some((v) => v !== 0));
    assert.throws(() => pruneNeurons(net.model, [{ layer: 'nope', channel: 0 }]), /no prunable layer named 'nope'/);
    assert.throws(() => pruneNeurons(net.model, [{ layer: 'bnR', channel: 3 }]), /has no channel 3/);
  });

  test('gates reproduce the model when open and the pruned model when closed', async () => {
    const data = randomImages(10, [2, 6, 6], 21);
    const layers = [...prunableLayers(net.model).values()];
    const gated = gateLayers(net.model, layers);
    const pruned = [{ layer: 'bnQ', channel: 2 }, { layer: 'conv2', channel: 1 }];
    const viaGates = await gatedPredictions(runtime, gated, data, pruningGates(gated.gates, pruned), { batchSize: 4 });
    const viaWeights = (await predict(pruneNeurons(net.model, pruned), data, runtime)).labels;
    assert.deepEqual(Array.from(viaGates), Array.from(viaWeights));
  });
});

describe("torch's deduplicated parameters (Identity aliases)", () => {
  /** bnQ.weight and bnQ.bias become Identity aliases of bnP's, as torch exports equal parameters. */
  function aliased() {
    const net = preActBlock();
    const m = net.model.clone();
    m.graph.initializer = m.graph.initializer.filter((t) => t.name !== 'bnQ.weight' && t.name !== 'bnQ.bias');
    m.graph.node.unshift(
      { op_type: 'Identity', input: ['bnP.weight'], output: ['bnQ.weight'], attribute: [], name: 'alias_w' },
      { op_type: 'Identity', input: ['bnP.bias'], output: ['bnQ.bias'], attribute: [], name: 'alias_b' },
    );
    m.invalidate();
    return { net, model: m };
  }

  test('are read through the alias and pruned in the layer that uses them only', async () => {
    const { net, model } = aliased();
    const out = await clp.run(ctx(asLoaded(model)));
    const bnQ = out.neurons!.filter((n) => n.layer === 'bnQ').map((n) => n.score);
    bnQ.forEach((s, k) => {
      const want = net.norms.conv1[k] * Math.abs(net.bn.bnP.gamma[k] / Math.sqrt(net.bn.bnQ.variance[k]));
      assert.ok(Math.abs(s - want) <= 1e-5 * want, `bnQ[${k}] ${s} vs ${want}`);
    });
    assert.deepEqual([...new Set((await bnp.run(ctx(asLoaded(model), randomImages(8, [2, 6, 6], 3)))).neurons!.map((n) => n.layer))], ['bnP', 'bnQ', 'bnR']);
    const pruned = pruneNeurons(model, [{ layer: 'bnQ', channel: 1 }]);
    assert.equal((pruned.initializer('bnQ.weight')!.data as Float32Array)[1], 0);
    assert.notEqual((pruned.initializer('bnP.weight')!.data as Float32Array)[1], 0, 'the layer sharing the stored value keeps it');
    assert.equal(pruned.nodes.filter((n) => n.op_type === 'Identity').length, 0);
  });
});

describe('pruning the fixture', () => {
  for (const file of ['model.onnx', 'model.folded.onnx']) {
    test(`${file}: gated evaluation equals the pruned weights on real images`, async () => {
      const model = await loadModel(join(fmnist.badnets, file));
      const data = loadDataset({ path: join(fmnist.data, 'test.npz') }, imageInputOf(model.onnx));
      const layers = file === 'model.onnx' ? preActivationLayers(model.onnx) : convNeuronLayers(model.onnx);
      const pruned = layers.flatMap((l, i) => [{ layer: l.name, channel: i }, { layer: l.name, channel: l.channels - 1 - i }]);
      const purified = pruneNeurons(model.onnx, pruned);
      if (file === 'model.folded.onnx') {
        const conv = layers[1].conv!;
        const w = purified.initializer(conv.weight)!;
        const per = w.dims.slice(1).reduce((a, b) => a * b, 1);
        assert.ok((w.data as Float32Array).subarray(per, 2 * per).every((v) => v === 0), 'folded conv filter zeroed');
        assert.equal((purified.initializer(conv.bias!)!.data as Float32Array)[1], 0, 'folded conv bias zeroed');
      }
      const gated = gateLayers(model.onnx, layers);
      const viaGates = await gatedPredictions(runtime, gated, data, pruningGates(gated.gates, pruned), { batchSize: 250 });
      const viaWeights = (await predict(purified, data, runtime)).labels;
      const agree = viaGates.reduce((a, p, i) => a + (p === viaWeights[i] ? 1 : 0), 0);
      assert.ok(agree >= data.n - 1, `${agree} of ${data.n} predictions agree`);
    });
  }
});
