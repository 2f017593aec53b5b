/**
 * Fine-Pruning (Liu et al., RAID 2018), pruning step only: the channels of the last conv layer
 * that stay dormant on clean data (mean activation, ascending) are pruned until clean accuracy
 * drops by more than a margin (default 4 points, the paper's stopping rule). Needs clean
 * labelled images. The fine-tuning step of the paper is not done (no weights are trained).
 * The accuracy curve is searched by galloping and bisection (neurons/search.ts) rather than one
 * evaluation per channel.
 */
import type { OnnxModel } from '../../graph/model';
import type { NodeProto } from '../../graph/proto';
import { forEachActivationBatch } from '../neurons/activations';
import { GatedEvaluator, gateLayers, openGates, pruningGates } from '../neurons/gates';
import { checkDataFits, checkLabelRange, convNeuronLayers, noNeuronLayers, ownParameters, requireLayers, type NeuronLayer } from '../neurons/layers';
import { numberOption } from '../neurons/options';
import { neuronOutput } from '../neurons/report';
import { largestHolding } from '../neurons/search';
import { ChannelMoments } from '../neurons/stats';
import type { Analysis, AnalysisContext, AnalysisOutput } from '../types';

export const FP_DEFAULT_MARGIN = 0.04;

const activationOps = new Set(['Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'Tanh', 'HardSigmoid', 'HardSwish', 'Clip', 'Elu', 'Selu', 'Gelu', 'Softplus', 'Mish']);

/**
 * The tensor whose mean activation Fine-Pruning ranks: the layer's output after its activation,
 * following a residual Add on the way (ResNet blocks add the shortcut before the ReLU).
 */
export function activationTensor(model: OnnxModel, layer: NeuronLayer): string {
  let tensor = layer.gateNode.output[0];
  for (let step = 0; step < 3; step++) {
    const consumers = model.consumersOf(tensor);
    if (consumers.length !== 1) break;
    const next: NodeProto = consumers[0];
    if (activationOps.has(next.op_type)) return next.output[0];
    if (next.op_type !== 'Add' && next.op_type !== 'Identity' && next.op_type !== 'Dropout') break;
    tensor = next.output[0];
  }
  return tensor;
}

export function lastConvLayer(model: OnnxModel): NeuronLayer | undefined {
  const layers = convNeuronLayers(model);
  return layers[layers.length - 1];
}

function accuracy(pred: Int32Array, labels: Int32Array): number {
  let ok = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) ok++;
  return ok / pred.length;
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

export const fp: Analysis = {
  id: 'fp',
  title: 'Fine-Pruning (dormant channels)',
  needs: 'labelled',
  detector: false,
  runsByDefault: true,
  options: {
    margin: { type: 'number', default: FP_DEFAULT_MARGIN, doc: 'clean accuracy (fraction) the dormant-channel pruning may cost' },
  },
  notApplicable: (model) => noNeuronLayers(model, convNeuronLayers(model.onnx), 'convolution with stored weights'),
  async run(ctx: AnalysisContext): Promise<AnalysisOutput> {
    const model = ownParameters(ctx.model.onnx);
    const data = ctx.data!;
    const layer = requireLayers(ctx.model, convNeuronLayers(model), 'convolution with stored weights', 'Fine-Pruning').at(-1)!;
    checkDataFits(model, data);
    checkLabelRange(data, ctx.numClasses, model.source);
    const margin = numberOption(ctx.options, 'fp', 'margin', FP_DEFAULT_MARGIN, { min: 0, max: 1 });
    const tensor = activationTensor(model, layer);
    const moments = new ChannelMoments(layer.channels);
    await forEachActivationBatch(
      model, ctx.runtime, data, [tensor],
      (_, b) => {
        for (let s = 0; s < b.count; s++) for (let c = 0; c < b.channels; c++) moments.add(c, b.data, (s * b.channels + c) * b.spatial, b.spatial);
      },
      { batchSize: ctx.batchSize, signal: ctx.signal, progress: (f) => ctx.progress(0.3 * f, 'mean activations on clean data') },
    );
    const activation = Float64Array.from(moments.mean);
    const order = Array.from(activation.keys()).sort((a, b) => activation[a] - activation[b] || a - b);
    const gated = gateLayers(model, [layer]);
    // The gates sit on the last conv layer: everything before it runs once (GatedEvaluator).
    const evaluator = await GatedEvaluator.create(ctx.runtime, gated, data, { batchSize: ctx.batchSize, signal: ctx.signal });
    const base = accuracy(await evaluator.predictions(openGates(gated.gates)), data.labels!);
    const accAt = new Map<number, number>([[0, base]]);
    const search = await largestHolding(order.length, async (k) => {
      const pruned = order.slice(0, k).map((channel) => ({ layer: layer.name, channel }));
      const acc = accuracy(await evaluator.predictions(pruningGates(gated.gates, pruned)), data.labels!);
      accAt.set(k, acc);
      ctx.progress(0.3 + 0.7 * Math.min(1, accAt.size / (2 * Math.log2(order.length + 1) + 1)), `measuring accuracy with ${k} channels pruned`);
      return base - acc <= margin + 1e-12;
    });
    const k = search.count;
    const flagged = new Array<boolean>(layer.channels).fill(false);
    for (const c of order.slice(0, k)) flagged[c] = true;
    const threshold = k > 0 ? activation[order[k - 1]] : activation[order[0]];
    const next = search.probes.filter((p) => !p.holds).sort((a, b) => a.k - b.k)[0];
    const why = k === order.length
      ? `all ${k} channels of ${layer.name} can be pruned within the margin of ${(100 * margin).toFixed(1)} points`
      : `pruning ${next?.k ?? k + 1} would lower clean accuracy on the given data from ${pct(base)} to ${pct(accAt.get(next?.k ?? k + 1) ?? base)}, more than the margin of ${(100 * margin).toFixed(1)} points (option fp.margin)`;
    const thresholdChoice = `pruned the ${k} most dormant of ${layer.channels} channels of ${layer.name} (mean activation ≤ ${threshold.toPrecision(4)}, accuracy ${pct(base)} → ${pct(accAt.get(k) ?? base)}): ${why}`;
    const suspicion = Float64Array.from(activation, (a) => -a);
    return neuronOutput(
      {
        method: 'fp', code: 'BL014', label: 'Fine-Pruning', scoreName: 'mean activation', direction: 'below', comparison: 'at or below',
        rule: `the most dormant channels of the last conv layer while clean accuracy drops ≤ ${(100 * margin).toFixed(1)} points`,
        thresholdChoice,
        notes: [thresholdChoice, `activations read at '${tensor}'; ${search.probes.length} accuracy evaluations${evaluator.cached ? ' (the layers before the pruned one run once)' : ''}; no fine-tuning`],
      },
      [{ layer: layer.name, scores: activation, threshold, suspicion, flagged }],
    );
  },
};
