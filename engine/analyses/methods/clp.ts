/**
 * CLP — channel Lipschitzness-based pruning (Zheng et al., ECCV 2022), data-free.
 * For output channel k of a conv: W_k = weight[k] as a (C_in/group, kh·kw) matrix, scaled by
 * |γ_k / √running_var_k| of the BN that normalises the conv's output (found by following the
 * graph, so pre-activation ResNets pair correctly; no epsilon, as the authors' code). The upper
 * bound of the channel Lipschitz constant (UCLC) is W_k's largest singular value; channels above
 * mean + u·std of their layer are flagged. On a BN-folded export the folded weights already hold
 * γ/√(var+ε), so the bound is computed from them directly. A conv no BN follows directly is
 * scored from its own weights, as its own layer.
 */
import { BackdoorLensError } from '../../errors';
import type { LoadedModel } from '../../formats/types';
import type { OnnxModel } from '../../graph/model';
import { convNeuronLayers, noNeuronLayers, ownParameters, requireLayers, type NeuronLayer } from '../neurons/layers';
import { neuronOutput, type LayerScores } from '../neurons/report';
import { largestSingularValue, layerThreshold } from '../neurons/stats';
import { THRESHOLD_MULTIPLIER_OPTION } from '../neurons/options';
import type { Analysis, AnalysisContext, AnalysisOutput } from '../types';

export function clpScores(model: OnnxModel, layer: NeuronLayer): Float64Array {
  const conv = layer.conv!;
  const w = model.initializer(conv.weight)!;
  const [cout, cinPerGroup] = w.dims;
  const kernel = w.dims.slice(2).reduce((a, b) => a * b, 1);
  const per = cinPerGroup * kernel;
  const data = w.data as Float32Array;
  let scale: ((k: number) => number) | undefined;
  if (conv.bn) {
    const gamma = model.initializer(conv.bn.scale)?.data as Float32Array | undefined;
    const variance = model.initializer(conv.bn.variance)?.data as Float32Array | undefined;
    if (!gamma || !variance) throw new BackdoorLensError('unsupported-model', `${model.source}: BN '${conv.bn.name}' has no stored scale or running variance`);
    scale = (k) => gamma[k] / Math.sqrt(variance[k]);
  }
  const out = new Float64Array(cout);
  for (let k = 0; k < cout; k++) {
    out[k] = largestSingularValue(data.subarray(k * per, (k + 1) * per), cinPerGroup, kernel, scale ? scale(k) : 1);
  }
  return out;
}

function layersOf(model: LoadedModel): NeuronLayer[] {
  return convNeuronLayers(model.onnx);
}

export const clp: Analysis = {
  id: 'clp',
  title: 'Channel Lipschitzness (CLP)',
  needs: 'none',
  detector: false,
  runsByDefault: true,
  options: {
    thresholdMultiplier: THRESHOLD_MULTIPLIER_OPTION,
  },
  notApplicable: (model) => noNeuronLayers(model, layersOf(model), 'convolution with stored weights'),
  async run(ctx: AnalysisContext): Promise<AnalysisOutput> {
    const model = ownParameters(ctx.model.onnx);
    const layers = requireLayers(ctx.model, convNeuronLayers(model), 'convolution with stored weights', 'CLP');
    const scored: LayerScores[] = [];
    layers.forEach((layer, i) => {
      ctx.signal.throwIfAborted();
      const scores = clpScores(model, layer);
      scored.push({ layer: layer.name, scores, threshold: layerThreshold(scores, ctx.thresholdMultiplier, 'above') });
      ctx.progress((i + 1) / layers.length, `Lipschitz bounds of layer ${i + 1}/${layers.length}`);
    });
    const unpaired = layers.filter((l) => !l.bn).map((l) => l.name);
    const notes = unpaired.length && layers.some((l) => l.bn)
      ? [`${unpaired.length} conv layer(s) feed no BN directly (${unpaired.slice(0, 4).join(', ')}${unpaired.length > 4 ? ', …' : ''}); scored from their own weights`]
      : undefined;
    return neuronOutput(
      { method: 'clp', code: 'BL010', label: 'CLP', scoreName: 'Lipschitz upper bound', direction: 'above', rule: `UCLC > mean + ${ctx.thresholdMultiplier}·std per layer`, notes },
      scored,
    );
  },
};
