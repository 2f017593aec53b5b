/**
 * A whole pickled model's module tree (modules.ts) as an ONNX graph, module by module, the way each
 * class's forward() runs in eval mode, with the hyperparameters the pickle records: strides,
 * paddings ('same' included), dilations, groups, BN eps, pool windows, activation slopes. Nothing is
 * guessed but the input size, which the caller picks (whole-model.ts).
 *
 * torch.nn layers convert one op each; containers (Sequential and torchvision's Sequential
 * subclasses) run their children in order; torchvision's ResNet, BasicBlock, Bottleneck, VGG,
 * MobileNetV2 and InvertedResidual run their children as their forward() does. Dropout and
 * Identity are no-ops (eval mode), BatchNorm uses its running statistics.
 *
 * Initializers are named by their state_dict keys, as the templates name them, through the same
 * TemplateBuilder: it checks every weight is used once and every shape chains.
 */
import { TemplateBuilder, type Act, type Vec } from '../templates/builder';
import { describe, sequenceItems, type PyValue } from '../pickle/values';
import { SEQUENTIAL_KINDS, type ModuleNode } from './modules';
import type { OnnxModel } from '../../graph/model';
import type { Tensor } from '../../tensor';

/** The tree holds something the converter does not build (a class, a hyperparameter); no input size helps. */
export class ConversionError extends Error {}

type Flow = Act | Vec;

const isMap = (x: Flow): x is Act => 'c' in x;

function where(m: ModuleNode): string {
  return `${m.path === '' ? 'the root module' : `module '${m.path}'`} (${m.kind})`;
}

function refuse(m: ModuleNode, what: string): never {
  throw new ConversionError(`${where(m)} ${what}`);
}

function attr(m: ModuleNode, name: string): PyValue {
  const v = m.attrs.get(name);
  if (v === undefined) refuse(m, `has no '${name}' attribute`);
  return v;
}

function int(m: ModuleNode, name: string, v: PyValue = attr(m, name)): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) refuse(m, `has ${name} ${describe(v)}, not an integer`);
  return v;
}

function float(m: ModuleNode, name: string): number {
  const v = attr(m, name);
  if (typeof v !== 'number') refuse(m, `has ${name} ${describe(v)}, not a number`);
  return v;
}

/** An int or a pair of ints (torch's _pair). */
function pair(m: ModuleNode, name: string, v: PyValue = attr(m, name)): [number, number] {
  if (typeof v === 'number') return [int(m, name, v), int(m, name, v)];
  const items = sequenceItems(v);
  if (items?.length === 1) return [int(m, name, items[0]), int(m, name, items[0])];
  if (items?.length === 2) return [int(m, name, items[0]), int(m, name, items[1])];
  refuse(m, `has ${name} ${describe(v)}, not a size of two dimensions`);
}

function flag(m: ModuleNode, name: string, fallback: boolean): boolean {
  const v = m.attrs.get(name);
  return v === undefined || v === null ? fallback : v === true;
}

function map(m: ModuleNode, x: Flow): Act {
  if (!isMap(x)) refuse(m, 'gets a flat feature vector; it needs a [C, H, W] feature map');
  return x;
}

function vec(m: ModuleNode, x: Flow): Vec {
  if (isMap(x)) refuse(m, 'gets a [C, H, W] feature map; a Flatten must come before it');
  return x;
}

function child(m: ModuleNode, name: string): ModuleNode | undefined {
  return m.children.find((c) => c.name === name)?.module;
}

function required(m: ModuleNode, name: string): ModuleNode {
  return child(m, name) ?? refuse(m, `has no submodule '${name}', which its forward() uses`);
}

function conv2d(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  if (m.attrs.get('transposed') === true) refuse(m, 'is transposed, which Backdoor Lens does not convert');
  const mode = m.attrs.get('padding_mode') ?? 'zeros';
  if (mode !== 'zeros') refuse(m, `pads with ${describe(mode)}; Backdoor Lens converts zero padding only`);
  const kernel = pair(m, 'kernel_size'), stride = pair(m, 'stride'), dilation = pair(m, 'dilation');
  const weight = b.dims(`${m.path}.weight`);
  if (weight && (weight[2] !== kernel[0] || weight[3] !== kernel[1])) refuse(m, `has kernel_size ${kernel.join('×')} but a weight of shape [${weight.join(', ')}]`);
  const padding = attr(m, 'padding');
  let pads: [number, number, number, number];
  if (padding === 'same') {
    // torch pads the extra row or column at the end (bottom, right).
    const th = dilation[0] * (kernel[0] - 1), tw = dilation[1] * (kernel[1] - 1);
    pads = [Math.floor(th / 2), Math.floor(tw / 2), th - Math.floor(th / 2), tw - Math.floor(tw / 2)];
  } else if (padding === 'valid') pads = [0, 0, 0, 0];
  else {
    const [ph, pw] = pair(m, 'padding', padding);
    pads = [ph, pw, ph, pw];
  }
  return b.conv(input, m.path, { stride, pads, dilation, groups: int(m, 'groups') });
}

function batchNorm(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  if (!m.buffers.has('running_mean')) refuse(m, 'keeps no running statistics (track_running_stats=False), so eval mode normalises each batch by itself, which Backdoor Lens does not convert');
  const eps = float(m, 'eps');
  return m.kind === 'BatchNorm2d' ? b.bn(map(m, x), m.path, eps) : b.bnVec(vec(m, x), m.path, eps);
}

function pool(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  if (flag(m, 'ceil_mode', false)) refuse(m, 'uses ceil_mode=True, which Backdoor Lens does not convert');
  const kernel = pair(m, 'kernel_size');
  const strideValue = m.attrs.get('stride');
  const stride = strideValue === null || strideValue === undefined || (sequenceItems(strideValue)?.length === 0) ? kernel : pair(m, 'stride', strideValue);
  const [ph, pw] = pair(m, 'padding');
  const pads: [number, number, number, number] = [ph, pw, ph, pw];
  if (m.kind === 'MaxPool2d') {
    if (flag(m, 'return_indices', false)) refuse(m, 'returns indices, which a classifier does not use');
    return b.pool('MaxPool', input, { kernel, stride, pads, dilation: pair(m, 'dilation') }, m.path);
  }
  const divisor = m.attrs.get('divisor_override');
  if (divisor !== undefined && divisor !== null) refuse(m, `divides by ${describe(divisor)} (divisor_override), which Backdoor Lens does not convert`);
  return b.pool('AveragePool', input, { kernel, stride, pads, countIncludePad: (ph > 0 || pw > 0) && flag(m, 'count_include_pad', true) }, m.path);
}

function adaptiveAvgPool(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  const size = attr(m, 'output_size');
  const items = typeof size === 'number' ? [size, size] : sequenceItems(size);
  if (!items || items.length !== 2) refuse(m, `has output_size ${describe(size)}, not a size of two dimensions`);
  // None keeps that dimension's input size.
  const [oh, ow] = items.map((v, i) => (v === null ? (i === 0 ? input.h : input.w) : int(m, 'output_size', v)));
  return b.adaptiveAvgPool(input, oh, ow, m.path);
}

function flatten(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  const start = int(m, 'start_dim'), end = int(m, 'end_dim');
  if (start !== 1 || end !== -1) refuse(m, `flattens dims ${start}…${end}; Backdoor Lens converts Flatten(1, -1) only`);
  return isMap(x) ? b.flatten(x) : x;
}

function sequence(b: TemplateBuilder, m: ModuleNode, x: Flow, names: readonly string[]): Flow {
  return names.reduce((y, n) => apply(b, required(m, n), y), x);
}

/** BasicBlock / Bottleneck: the main path, plus the input (or its downsample), then ReLU. */
function residual(b: TemplateBuilder, m: ModuleNode, x: Flow, convs: number): Act {
  const input = map(m, x);
  const names = Array.from({ length: convs }, (_, i) => [`conv${i + 1}`, `bn${i + 1}`, ...(i < convs - 1 ? ['relu'] : [])]).flat();
  const out = map(m, sequence(b, m, input, names));
  const downsample = child(m, 'downsample');
  const shortcut = downsample ? map(downsample, apply(b, downsample, input)) : input;
  return map(m, apply(b, required(m, 'relu'), b.add(out, shortcut, `${m.path}.add`)));
}

function invertedResidual(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  const out = map(m, apply(b, required(m, 'conv'), input));
  return m.attrs.get('use_res_connect') === true ? b.add(out, input, `${m.path}.add`) : out;
}

/** Runs a module on x as its forward() would in eval mode. */
function apply(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  if (SEQUENTIAL_KINDS.has(m.kind)) return m.children.reduce((y, c) => apply(b, c.module, y), x);
  const hint = m.path || m.kind;
  switch (m.kind) {
    case 'Conv2d': return conv2d(b, m, x);
    case 'BatchNorm1d': case 'BatchNorm2d': return batchNorm(b, m, x);
    case 'ReLU': return b.relu(x, hint);
    case 'ReLU6': return b.relu6(x, hint);
    case 'LeakyReLU': return b.unary(x, 'LeakyRelu', { alpha: float(m, 'negative_slope') }, hint);
    case 'ELU': return b.unary(x, 'Elu', { alpha: float(m, 'alpha') }, hint);
    case 'Sigmoid': return b.unary(x, 'Sigmoid', {}, hint);
    case 'Tanh': return b.unary(x, 'Tanh', {}, hint);
    case 'Hardsigmoid': return b.unary(x, 'HardSigmoid', { alpha: 1 / 6, beta: 0.5 }, hint);
    case 'SiLU': return b.silu(x, hint);
    case 'MaxPool2d': case 'AvgPool2d': return pool(b, m, x);
    case 'AdaptiveAvgPool2d': return adaptiveAvgPool(b, m, x);
    case 'Flatten': return flatten(b, m, x);
    case 'Linear': return b.linear(vec(m, x), m.path);
    case 'Identity': case 'Dropout': case 'Dropout1d': case 'Dropout2d': case 'AlphaDropout': return x;
    // torchvision, as their forward() methods run (torchvision 0.8 … 0.20).
    case 'ResNet': {
      const features = sequence(b, m, x, ['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4', 'avgpool']);
      return apply(b, required(m, 'fc'), isMap(features) ? b.flatten(features) : features);
    }
    case 'BasicBlock': return residual(b, m, x, 2);
    case 'Bottleneck': return residual(b, m, x, 3);
    case 'VGG': {
      const features = sequence(b, m, x, ['features', 'avgpool']);
      return apply(b, required(m, 'classifier'), isMap(features) ? b.flatten(features) : features);
    }
    case 'MobileNetV2': {
      const features = map(m, apply(b, required(m, 'features'), x));
      return apply(b, required(m, 'classifier'), b.flatten(b.adaptiveAvgPool(features, 1, 1)));
    }
    case 'InvertedResidual': return invertedResidual(b, m, x);
    default: refuse(m, 'is not a module Backdoor Lens converts');
  }
}

export interface ConvertedModel {
  onnx: OnnxModel;
  numClasses: number;
  input: [number, number, number];
  sizeAgnostic: boolean;
}

/**
 * The graph of a module tree for [c, h, w] inputs. Throws ConversionError for what no input size
 * fixes, and TemplateMismatch (from the builder) when the shapes do not chain at this size or a
 * weight goes unused.
 */
export function convertTree(tree: ModuleNode, stateDict: Map<string, Tensor>, input: [number, number, number]): ConvertedModel {
  const b = new TemplateBuilder(stateDict);
  const out = apply(b, tree, b.input(...input));
  if (isMap(out)) refuse(tree, `ends with a [${out.c}, ${out.h}, ${out.w}] feature map, not class scores: its last layer must give a flat vector (Flatten, Linear)`);
  return b.finish(out);
}
