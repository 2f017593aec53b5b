/**
 * Which neurons a model has for the neuron methods: a neuron is one output channel of a conv (or
 * one channel of a BatchNormalization). Layers are found by following the graph
 * (engine/graph/patterns.ts), so a BN is paired with the conv that really feeds it.
 */
import type { Dataset } from '../../data/types';
import { badData, BackdoorLensError } from '../../errors';
import { imageInputOf } from '../../evaluate';
import type { LoadedModel } from '../../formats/types';
import type { OnnxModel } from '../../graph/model';
import { bnLayers, bnStatus, convLayers, type BnLayer, type ConvLayer } from '../../graph/patterns';
import type { NodeProto } from '../../graph/proto';
import type { Tensor } from '../../tensor';

export interface NeuronLayer {
  /** The name reports use: the BN's module path when a BN normalises the channels, else the conv's. */
  name: string;
  channels: number;
  /** The tensor holding the pre-activation: the BN input, or the conv output when there is no BN. */
  preActivation: string;
  /** The node whose output per-channel gates multiply (the BN, or the conv without BN). */
  gateNode: NodeProto;
  bn?: BnLayer;
  conv?: ConvLayer;
}

/**
 * torch's exporter stores equal parameters once (untrained BN weights, say) and reaches the
 * duplicates through Identity nodes. Reading or pruning one layer's parameters needs them as its
 * own initializers: this returns a copy where every such alias is one (the model itself if none).
 */
export function ownParameters(model: OnnxModel): OnnxModel {
  const isAlias = (n: NodeProto) => n.op_type === 'Identity' && model.hasInitializer(n.input[0]) && !model.graph.output.some((o) => o.name === n.output[0]);
  if (!model.nodes.some(isAlias)) return model;
  const copy = model.clone();
  const aliases = copy.nodes.filter((n) => n.op_type === 'Identity' && copy.hasInitializer(n.input[0]) && !copy.graph.output.some((o) => o.name === n.output[0]));
  for (const node of aliases) copy.setInitializer(node.output[0], copy.initializer(node.input[0])!);
  const dropped = new Set(aliases);
  copy.graph.node = copy.nodes.filter((n) => !dropped.has(n));
  copy.invalidate();
  return copy;
}

/** A stored parameter, directly or through torch's Identity aliases. */
export function storedTensor(model: OnnxModel, name: string | undefined): Tensor | undefined {
  for (let depth = 0; name && depth < 4; depth++) {
    if (model.hasInitializer(name)) return model.initializer(name);
    const producer = model.producerOf(name);
    name = producer?.op_type === 'Identity' ? producer.input[0] : undefined;
  }
  return undefined;
}

function float32Initializer(model: OnnxModel, name: string | undefined): boolean {
  return storedTensor(model, name)?.dtype === 'float32';
}

/** BatchNormalization layers whose scale, bias and statistics are float32 initializers. */
export function bnNeuronLayers(model: OnnxModel): NeuronLayer[] {
  return bnLayers(model)
    .filter((bn) => [bn.scale, bn.bias, bn.mean, bn.variance].every((n) => float32Initializer(model, n)))
    .map((bn) => ({ name: bn.name, channels: storedTensor(model, bn.scale)!.dims[0], preActivation: bn.input, gateNode: bn.node, bn, conv: bn.conv ? convLayers(model).find((c) => c.node === bn.conv) : undefined }));
}

/** Conv layers with float32 initializer weights, each named by the BN that follows it when there is one. */
export function convNeuronLayers(model: OnnxModel): NeuronLayer[] {
  return convLayers(model)
    .filter((c) => float32Initializer(model, c.weight) && c.outChannels > 0)
    .map((c) => ({ name: c.bn?.name ?? c.name, channels: c.outChannels, preActivation: c.node.output[0], gateNode: c.bn?.node ?? c.node, bn: c.bn, conv: c }));
}

/**
 * The layers whose pre-activations the data-driven methods read: the BN layers when BN was kept,
 * else (BN folded into the convs, or no BN) the convs, whose outputs are then the pre-activations.
 */
export function preActivationLayers(model: OnnxModel): NeuronLayer[] {
  const bns = bnNeuronLayers(model);
  return bns.length > 0 ? bns : convNeuronLayers(model);
}

/** Why a model has no neurons for these methods, or undefined when it has some. */
export function noNeuronLayers(model: LoadedModel, layers: NeuronLayer[], what: string): string | undefined {
  if (layers.length > 0) return undefined;
  const status = bnStatus(model.onnx);
  return `the model has no ${what} (${status.evidence}); neuron methods need convolutional layers with BatchNormalization or conv weights stored in the file`;
}

export function requireLayers(model: LoadedModel, layers: NeuronLayer[], what: string, method: string): NeuronLayer[] {
  const why = noNeuronLayers(model, layers, what);
  if (why) throw new BackdoorLensError('unsupported-model', `${method} cannot run: ${why}`, { file: model.path });
  return layers;
}

/** Throws a bad-data error naming both shapes when the samples do not fit the model input. */
export function checkDataFits(model: OnnxModel, data: Dataset): void {
  const input = imageInputOf(model);
  const expected = input.dims.slice(1);
  const got = data.dims.slice(1);
  const fits = expected.length === got.length && expected.every((d, i) => typeof d !== 'number' || d === got[i]);
  if (!fits) {
    throw badData(
      data.source,
      `samples have shape [${got.join(', ')}] but ${model.source} input '${input.name}' expects [${expected.join(', ')}] per sample; give data of that size (or --size/--channels/--resize to convert it)`,
    );
  }
  if (data.n === 0) throw badData(data.source, 'the data set holds no samples');
  if (data.x.length !== data.n * got.reduce((a, b) => a * b, 1)) throw badData(data.source, `the data set holds ${data.x.length} values, not ${data.n} samples of [${got.join(', ')}]`);
}

/** Throws a bad-data error when a label is not a class of the model. */
export function checkLabelRange(data: Dataset, numClasses: number | null, modelSource: string): void {
  if (!data.labels || numClasses === null) return;
  for (let i = 0; i < data.n; i++) {
    const y = data.labels[i];
    if (y < 0 || y >= numClasses) {
      throw badData(data.source, `label ${y} of sample ${i} is out of range: ${modelSource} has ${numClasses} classes (0 to ${numClasses - 1})`);
    }
  }
}
