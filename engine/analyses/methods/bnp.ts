/**
 * BNP — BN-statistics-based pruning (Zheng et al., NeurIPS 2022), needs clean images, no labels.
 * For every BN layer: μc, σc² = mean and unbiased variance over (N, H, W) of the BN input on the
 * clean images; μr, σr² = the layer's running statistics;
 * KL(N(μc, σc²) ‖ N(μr, σr²)) = ln(σr/σc) + (σc² + (μc − μr)²)/(2σr²) − ½ (the paper's formula).
 * Channels above mean + u·std of their layer are flagged. Needs the BN layers: on a BN-folded
 * export it does not apply (the scan reports BL020 with how to re-export).
 */
import type { LoadedModel } from '../../formats/types';
import { bnStatus } from '../../graph/patterns';
import { forEachActivationBatch } from '../neurons/activations';
import { bnNeuronLayers, checkDataFits, ownParameters, requireLayers } from '../neurons/layers';
import { firstSamples, numberOption, THRESHOLD_MULTIPLIER_OPTION } from '../neurons/options';
import { neuronOutput, type LayerScores } from '../neurons/report';
import { ChannelMoments, layerThreshold } from '../neurons/stats';
import type { Analysis, AnalysisContext, AnalysisOutput } from '../types';

/** BNP reads at most this many clean images unless `bnp.samples` says otherwise (the paper shows 10 suffice). */
export const BNP_DEFAULT_SAMPLES = 256;

export function gaussianKl(muC: number, varC: number, muR: number, varR: number): number {
  return Math.log(Math.sqrt(varR) / Math.sqrt(varC)) + (varC + (muC - muR) ** 2) / (2 * varR) - 0.5;
}

export function bnFoldedReason(model: LoadedModel): string | undefined {
  const status = bnStatus(model.onnx);
  if (status.state === 'folded') return 'BatchNormalization was folded into the convolutions at export, so the running statistics BNP compares with are gone (see BL020)';
  if (bnNeuronLayers(model.onnx).length === 0) return `the model has no BatchNormalization layers with stored statistics (${status.evidence})`;
  return undefined;
}

export const bnp: Analysis = {
  id: 'bnp',
  title: 'BN statistics (BNP)',
  needs: 'clean',
  detector: false,
  runsByDefault: true,
  options: {
    thresholdMultiplier: THRESHOLD_MULTIPLIER_OPTION,
    samples: { type: 'integer', default: BNP_DEFAULT_SAMPLES, doc: 'clean images the activations are collected on (0: all)' },
  },
  notApplicable: bnFoldedReason,
  async run(ctx: AnalysisContext): Promise<AnalysisOutput> {
    const model = ownParameters(ctx.model.onnx);
    const layers = requireLayers(ctx.model, bnNeuronLayers(model), 'BatchNormalization layers with stored statistics', 'BNP');
    checkDataFits(model, ctx.data!);
    const limit = numberOption(ctx.options, 'bnp', 'samples', BNP_DEFAULT_SAMPLES, { min: 0, integer: true });
    const data = firstSamples(ctx.data!, limit);
    const moments = new Map(layers.map((l) => [l.preActivation, new ChannelMoments(l.channels)]));
    await forEachActivationBatch(
      model, ctx.runtime, data, layers.map((l) => l.preActivation),
      (tensor, b) => {
        const m = moments.get(tensor)!;
        for (let s = 0; s < b.count; s++) for (let c = 0; c < b.channels; c++) m.add(c, b.data, (s * b.channels + c) * b.spatial, b.spatial);
      },
      { batchSize: ctx.batchSize, signal: ctx.signal, progress: ctx.progress },
    );
    const scored: LayerScores[] = layers.map((l) => {
      const m = moments.get(l.preActivation)!;
      const runMean = model.initializer(l.bn!.mean)!.data as Float32Array;
      const runVar = model.initializer(l.bn!.variance)!.data as Float32Array;
      const kl = new Float64Array(l.channels);
      for (let c = 0; c < l.channels; c++) kl[c] = gaussianKl(m.mean[c], m.variance(c), runMean[c], runVar[c]);
      return { layer: l.name, scores: kl, threshold: layerThreshold(kl, ctx.thresholdMultiplier, 'above') };
    });
    const notes = [`statistics from ${data.n} of ${ctx.data!.n} images${data.n < ctx.data!.n ? ` (the first ${data.n}; option bnp.samples, 0 = all)` : ''}`];
    return neuronOutput(
      { method: 'bnp', code: 'BL011', label: 'BNP', scoreName: 'KL divergence from the BN running statistics', direction: 'above', rule: `KL > mean + ${ctx.thresholdMultiplier}·std per layer`, notes },
      scored,
    );
  },
};
