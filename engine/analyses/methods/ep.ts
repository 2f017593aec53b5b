/**
 * EP — entropy-based pruning (Zheng et al., NeurIPS 2022), on a possibly poisoned sample set,
 * no labels. For every layer: each sample's channel is reduced to the spatial maximum of its
 * pre-activation (a C×N matrix); each channel is z-scored across samples (unbiased std); the
 * histogram entropy −Σ p ln p uses bins of width 0.01 (the authors' code; BackdoorBench uses 0.1)
 * from the layer-wide minimum, count = floor((max − min)/width), strict bin edges, p = count/N.
 * Channels below mean − u·std of their layer are flagged: a backdoor splits a channel's maxima
 * into two populations, which lowers its standardised entropy.
 */
import type { OnnxModel } from '../../graph/model';
import { bnStatus } from '../../graph/patterns';
import { forEachActivationBatch } from '../neurons/activations';
import { checkDataFits, noNeuronLayers, preActivationLayers, ownParameters, requireLayers } from '../neurons/layers';
import { firstSamples, numberOption, THRESHOLD_MULTIPLIER_OPTION } from '../neurons/options';
import { neuronOutput, type LayerScores } from '../neurons/report';
import { histogramEntropy, layerThreshold, mean, unbiasedStd } from '../neurons/stats';
import type { Analysis, AnalysisContext, AnalysisOutput } from '../types';

export const EP_DEFAULT_SAMPLES = 500;
export const EP_DEFAULT_BIN_WIDTH = 0.01;

/** Entropy per channel of one layer's C×N maxima (row c holds channel c's N per-sample maxima). */
export function layerEntropies(maxima: Float32Array[], width: number): { entropies: Float64Array; constantChannels: number } {
  let lo = Infinity, hi = -Infinity, constantChannels = 0;
  const standardised = maxima.map((row) => {
    const m = mean(row), s = unbiasedStd(row);
    const z = new Float64Array(row.length);
    if (s > 0) for (let i = 0; i < row.length; i++) z[i] = (row[i] - m) / s;
    else constantChannels++;
    for (const v of z) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
    return z;
  });
  const bins = Math.floor((hi - lo) / width);
  return { entropies: Float64Array.from(standardised, (z) => histogramEntropy(z, lo, width, bins)), constantChannels };
}

export async function channelMaxima(model: OnnxModel, ctx: AnalysisContext, tensors: string[], channels: number[], data = ctx.data!): Promise<Map<string, Float32Array[]>> {
  const maxima = new Map(tensors.map((t, i) => [t, Array.from({ length: channels[i] }, () => new Float32Array(data.n))]));
  await forEachActivationBatch(
    model, ctx.runtime, data, tensors,
    (tensor, b, start) => {
      const rows = maxima.get(tensor)!;
      for (let s = 0; s < b.count; s++) {
        for (let c = 0; c < b.channels; c++) {
          const off = (s * b.channels + c) * b.spatial;
          let m = -Infinity;
          for (let k = 0; k < b.spatial; k++) if (b.data[off + k] > m) m = b.data[off + k];
          rows[c][start + s] = m;
        }
      }
    },
    { batchSize: ctx.batchSize, signal: ctx.signal, progress: ctx.progress },
  );
  return maxima;
}

export const ep: Analysis = {
  id: 'ep',
  title: 'Pre-activation entropy (EP)',
  needs: 'mixed',
  detector: false,
  runsByDefault: true,
  options: {
    thresholdMultiplier: THRESHOLD_MULTIPLIER_OPTION,
    samples: { type: 'integer', default: EP_DEFAULT_SAMPLES, doc: 'images the activations are collected on (0: all)' },
    binWidth: { type: 'number', default: EP_DEFAULT_BIN_WIDTH, doc: 'histogram bin width of the entropy estimate' },
  },
  notApplicable: (model) => noNeuronLayers(model, preActivationLayers(model.onnx), 'BatchNormalization or convolution layers'),
  async run(ctx: AnalysisContext): Promise<AnalysisOutput> {
    const model = ownParameters(ctx.model.onnx);
    const layers = requireLayers(ctx.model, preActivationLayers(model), 'BatchNormalization or convolution layers', 'EP');
    checkDataFits(model, ctx.data!);
    const width = numberOption(ctx.options, 'ep', 'binWidth', EP_DEFAULT_BIN_WIDTH, { min: 1e-6 });
    const data = firstSamples(ctx.data!, numberOption(ctx.options, 'ep', 'samples', EP_DEFAULT_SAMPLES, { min: 0, integer: true }));
    const maxima = await channelMaxima(model, { ...ctx, data }, layers.map((l) => l.preActivation), layers.map((l) => l.channels), data);
    let constant = 0;
    const scored: LayerScores[] = layers.map((l) => {
      const { entropies, constantChannels } = layerEntropies(maxima.get(l.preActivation)!, width);
      constant += constantChannels;
      return { layer: l.name, scores: entropies, threshold: layerThreshold(entropies, ctx.thresholdMultiplier, 'below') };
    });
    const notes = [`maxima of ${data.n} of ${ctx.data!.n} samples${data.n < ctx.data!.n ? ` (the first ${data.n}; option ep.samples, 0 = all)` : ''}, bin width ${width}`];
    if (!layers[0].bn && bnStatus(model).state === 'folded') notes.push('BN was folded into the convolutions: the pre-activation read is the conv output, an affine map of the BN input per channel (same entropy when γ > 0)');
    if (constant) notes.push(`${constant} channel(s) have the same maximum on every sample (std 0): standardised to 0, not NaN as in the reference code`);
    return neuronOutput(
      { method: 'ep', code: 'BL012', label: 'EP', scoreName: 'standardised entropy', direction: 'below', rule: `entropy < mean − ${ctx.thresholdMultiplier}·std per layer`, notes },
      scored,
    );
  },
};
