/**
 * A whole pickled model's module tree (modules.ts) as an ONNX graph, module by module, the way each
 * class's forward() runs in eval mode, with the hyperparameters the pickle records: strides,
 * paddings ('same' included), dilations, groups, BN eps, pool windows, activation slopes. Nothing is
 * guessed but the input size, which the caller picks (whole-model.ts).
 *
 * torch.nn layers convert one op each; containers (Sequential and torchvision's Sequential
 * subclasses) run their children in order; torchvision's ResNet, VGG, MobileNetV2, MobileNetV3,
 * DenseNet, Inception3, SqueezeNet and GoogLeNet, and their blocks, run their children as their
 * forward() does. Dropout and Identity are no-ops (eval mode), BatchNorm uses its running
 * statistics, auxiliary heads (Inception3's AuxLogits, GoogLeNet's aux1 and aux2) are not run.
 *
 * Initializers are named by their state_dict keys, as the templates name them, through the same
 * TemplateBuilder: it checks every weight is used once and every shape chains.
 */
import { TemplateBuilder, type Act } from '../templates/builder';
import { describe, sequenceItems } from '../pickle/values';
import { SEQUENTIAL_KINDS, type ModuleNode } from './modules';
import type { OnnxModel } from '../../graph/model';
import type { Tensor } from '../../tensor';
import { attr, child, flag, float, int, isMap, isTokens, isVec, map, pair, refuse, required, shapeText, vec, type Flow } from './convert-helpers';
import { familyConverters } from './families';
import { gelu, layerNorm, permute, tokensLinear } from './layers';

export { ConversionError } from './convert-helpers';

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
  const groups = int(m, 'groups');
  if (groups < 1) refuse(m, `has groups ${groups}; it must be at least 1`);
  return b.conv(input, m.path, { stride, pads, dilation, groups });
}

function batchNorm(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  if (!m.buffers.has('running_mean')) refuse(m, 'keeps no running statistics (track_running_stats=False), so eval mode normalises each batch by itself, which Backdoor Lens does not convert');
  const eps = float(m, 'eps');
  return m.kind === 'BatchNorm2d' ? b.bn(map(m, x), m.path, eps) : b.bnVec(vec(m, x), m.path, eps);
}

function pool(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  // ceil_mode keeps a last partial window (never one starting in the end padding), as ONNX's ceil_mode does.
  const ceil = flag(m, 'ceil_mode', false);
  const kernel = pair(m, 'kernel_size');
  const strideValue = m.attrs.get('stride');
  const stride = strideValue === null || strideValue === undefined || (sequenceItems(strideValue)?.length === 0) ? kernel : pair(m, 'stride', strideValue);
  const [ph, pw] = pair(m, 'padding');
  const pads: [number, number, number, number] = [ph, pw, ph, pw];
  if (m.kind === 'MaxPool2d') {
    if (flag(m, 'return_indices', false)) refuse(m, 'returns indices, which a classifier does not use');
    return b.pool('MaxPool', input, { kernel, stride, pads, dilation: pair(m, 'dilation'), ceil }, m.path);
  }
  const divisor = m.attrs.get('divisor_override');
  if (divisor !== undefined && divisor !== null) refuse(m, `divides by ${describe(divisor)} (divisor_override), which Backdoor Lens does not convert`);
  // Without padding the flag changes nothing in floor mode; in ceil mode torch then divides a partial
  // last window by its real elements, which is ONNX's count_include_pad=0.
  return b.pool('AveragePool', input, { kernel, stride, pads, countIncludePad: (ph > 0 || pw > 0) && flag(m, 'count_include_pad', true), ceil }, m.path);
}

function adaptiveAvgPool(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  const size = attr(m, 'output_size');
  const items = typeof size === 'number' ? [size, size] : sequenceItems(size);
  if (!items || items.length !== 2) refuse(m, `has output_size ${describe(size)}, not a size of two dimensions`);
  // None keeps that dimension's input size.
  const [oh, ow] = items.map((v, i) => (v === null ? (i === 0 ? input.h : input.w) : int(m, 'output_size', v)));
  if (oh < 1 || ow < 1) refuse(m, `has output_size ${oh}×${ow}; both sides must be at least 1`);
  // The general case builds [oh, H] and [W, ow] bin matrices: keep them to the size of a real layer.
  if (oh * input.h > 2 ** 24 || ow * input.w > 2 ** 24) refuse(m, `pools ${input.h}×${input.w} to ${oh}×${ow}, too large to convert`);
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

/** MobileNetV2's (main path 'conv') and V3's ('block'): the input added back when use_res_connect. */
function invertedResidual(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  const out = map(m, apply(b, child(m, 'conv') ?? required(m, 'block'), input));
  return m.attrs.get('use_res_connect') === true ? b.add(out, input, `${m.path}.add`) : out;
}

/** SqueezeExcitation: the input scaled per channel by avgpool → fc1 → activation → fc2 → scale_activation. */
function squeezeExcitation(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  const scale = map(m, sequence(b, m, input, ['avgpool', 'fc1', 'activation', 'fc2', 'scale_activation']));
  return b.scale(input, scale, `${m.path}.scale`);
}

/** DenseNet's _DenseLayer on the concatenation of the block's features so far (dropout is off in eval). */
function denseLayer(b: TemplateBuilder, m: ModuleNode, x: Act): Act {
  return map(m, sequence(b, m, x, ['norm1', 'relu1', 'conv1', 'norm2', 'relu2', 'conv2']));
}

/** _DenseBlock: each layer takes every earlier output, concatenated; the block gives them all. */
function denseBlock(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const features = [map(m, x)];
  for (const c of m.children) features.push(denseLayer(b, c.module, b.concat(features, `${c.module.path}.cat`)));
  return b.concat(features, `${m.path}.cat`);
}

/** F.avg_pool2d(x, 3, stride=1, padding=1) and F.max_pool2d(x, 3, stride=2) of the Inception blocks. */
const avgPool3 = (b: TemplateBuilder, x: Act, hint: string) => b.pool('AveragePool', x, { kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1], countIncludePad: true }, hint);
const maxPool3 = (b: TemplateBuilder, x: Act, hint: string) => b.pool('MaxPool', x, { kernel: [3, 3], stride: [2, 2], pads: [0, 0, 0, 0] }, hint);

/** torchvision's InceptionA…E: branches of BasicConv2d and pools, concatenated in forward()'s order. */
function inceptionBlock(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  const run = (...names: string[]) => map(m, sequence(b, m, input, names));
  const pooled = (name: string) => map(m, apply(b, required(m, name), avgPool3(b, input, `${m.path}.avg_pool`)));
  const split = (stem: Act, a: string, c: string) => b.concat([map(m, apply(b, required(m, a), stem)), map(m, apply(b, required(m, c), stem))], `${m.path}.${a}.cat`);
  let branches: Act[];
  switch (m.kind) {
    case 'InceptionA':
      branches = [run('branch1x1'), run('branch5x5_1', 'branch5x5_2'), run('branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'), pooled('branch_pool')];
      break;
    case 'InceptionB':
      branches = [run('branch3x3'), run('branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'), maxPool3(b, input, `${m.path}.max_pool`)];
      break;
    case 'InceptionC':
      branches = [run('branch1x1'), run('branch7x7_1', 'branch7x7_2', 'branch7x7_3'), run('branch7x7dbl_1', 'branch7x7dbl_2', 'branch7x7dbl_3', 'branch7x7dbl_4', 'branch7x7dbl_5'), pooled('branch_pool')];
      break;
    case 'InceptionD':
      branches = [run('branch3x3_1', 'branch3x3_2'), run('branch7x7x3_1', 'branch7x7x3_2', 'branch7x7x3_3', 'branch7x7x3_4'), maxPool3(b, input, `${m.path}.max_pool`)];
      break;
    default: // InceptionE
      branches = [run('branch1x1'), split(run('branch3x3_1'), 'branch3x3_2a', 'branch3x3_2b'), split(run('branch3x3dbl_1', 'branch3x3dbl_2'), 'branch3x3dbl_3a', 'branch3x3dbl_3b'), pooled('branch_pool')];
  }
  return b.concat(branches, `${m.path}.cat`);
}

const INCEPTION_STAGES = ['Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'maxpool1', 'Conv2d_3b_1x1', 'Conv2d_4a_3x3', 'maxpool2', 'Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b', 'Mixed_7c', 'avgpool', 'dropout'];

/**
 * Inception3's and GoogLeNet's transform_input: ImageNet-normalised inputs renormalised per channel
 * to the (x − 0.5) / 0.5 the original weights were trained on.
 */
function transformInput(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  if (m.attrs.get('transform_input') !== true) return input;
  if (input.c !== 3) refuse(m, `has transform_input on ${input.c} input channels; it renormalises 3`);
  return b.channelAffine(input, [0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5], [(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5], 'transform_input');
}

/** Auxiliary heads run only in training: their weights are in the state_dict but not in the graph. */
function skipHeads(b: TemplateBuilder, m: ModuleNode, names: readonly string[]): void {
  for (const n of names) if (child(m, n)) b.unused(m.path ? `${m.path}.${n}` : n);
}

/** Inception3: transform_input's per-channel renormalisation, the stages, fc; AuxLogits runs only in training. */
function inception3(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  const input = transformInput(b, m, x);
  skipHeads(b, m, ['AuxLogits']);
  const features = sequence(b, m, input, INCEPTION_STAGES);
  return apply(b, required(m, 'fc'), isMap(features) ? b.flatten(features) : features);
}

/** SqueezeNet's Fire: a squeeze 1×1 conv and ReLU, then its 1×1 and 3×3 expands, each with ReLU, concatenated. */
function fire(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const squeezed = map(m, sequence(b, m, x, ['squeeze', 'squeeze_activation']));
  const expand = (conv: string) => map(m, sequence(b, m, squeezed, [conv, `${conv}_activation`]));
  return b.concat([expand('expand1x1'), expand('expand3x3')], `${m.path}.cat`);
}

/** torchvision's GoogLeNet Inception: four branches on the same input, concatenated (branch4 pools in ceil_mode). */
function googLeNetInception(b: TemplateBuilder, m: ModuleNode, x: Flow): Act {
  const input = map(m, x);
  return b.concat(['branch1', 'branch2', 'branch3', 'branch4'].map((n) => map(m, apply(b, required(m, n), input))), `${m.path}.cat`);
}

const GOOGLENET_STAGES = ['conv1', 'maxpool1', 'conv2', 'conv3', 'maxpool2', 'inception3a', 'inception3b', 'maxpool3', 'inception4a', 'inception4b', 'inception4c', 'inception4d', 'inception4e', 'maxpool4', 'inception5a', 'inception5b', 'avgpool'];

/** GoogLeNet: transform_input, the stages, flatten, dropout, fc; aux1 and aux2 run only in training. */
function googLeNet(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  const input = transformInput(b, m, x);
  skipHeads(b, m, ['aux1', 'aux2']);
  const features = sequence(b, m, input, GOOGLENET_STAGES);
  return sequence(b, m, isMap(features) ? b.flatten(features) : features, ['dropout', 'fc']);
}

/** torch.nn.LayerNorm over the last dimension, or ConvNeXt's LayerNorm2d over the channels of a map. */
function layerNormModule(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  const eps = float(m, 'eps');
  const shape = attr(m, 'normalized_shape');
  const items = typeof shape === 'number' ? [shape] : sequenceItems(shape);
  if (!items || items.length !== 1) refuse(m, `normalises over ${describe(shape)}; Backdoor Lens converts a LayerNorm over one dimension`);
  const size = int(m, 'normalized_shape', items[0]);
  const input: Flow = m.kind === 'LayerNorm2d' ? map(m, x) : x;
  const channels = isMap(input) ? input.c : isVec(input) ? input.n : input.dims[input.dims.length - 1];
  if (channels !== size) refuse(m, `normalises ${size} features but gets ${shapeText(input)}`);
  const name = layerNorm(b, input.name, m.path, eps, isMap(input) ? 1 : -1, size);
  b.follows(name, input.name);
  return { ...input, name };
}

function geluModule(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  const approximate = m.attrs.get('approximate') ?? 'none';
  if (approximate !== 'none') refuse(m, `has approximate=${describe(approximate)}; Backdoor Lens converts the exact (erf) GELU only`);
  return { ...x, name: gelu(b, x.name, m.path || 'gelu') };
}

function permuteModule(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  const value = attr(m, 'dims');
  const dims = sequenceItems(value);
  if (!dims) refuse(m, `has dims ${describe(value)}, not a list of axes`);
  return permute(b, m, x, dims.map((d) => int(m, 'dims', d)));
}

/** Runs a module on x as its forward() would in eval mode. */
function apply(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  const family = familyConverters.get(m.cls);
  if (family) return family(b, m, x, (n, y) => apply(b, n, y));
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
    case 'Hardswish': return b.hardswish(x, hint);
    case 'MaxPool2d': case 'AvgPool2d': return pool(b, m, x);
    case 'AdaptiveAvgPool2d': return adaptiveAvgPool(b, m, x);
    case 'Flatten': return flatten(b, m, x);
    case 'Linear': case 'NonDynamicallyQuantizableLinear': return isTokens(x) ? tokensLinear(b, x, m.path) : b.linear(vec(m, x), m.path);
    case 'LayerNorm': case 'LayerNorm2d': return layerNormModule(b, m, x);
    case 'GELU': return geluModule(b, m, x);
    case 'Permute': return permuteModule(b, m, x);
    // StochasticDepth drops whole residual branches only in training.
    case 'Identity': case 'Dropout': case 'Dropout1d': case 'Dropout2d': case 'AlphaDropout': case 'StochasticDepth': return x;
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
    case 'MobileNetV3': {
      const features = sequence(b, m, x, ['features', 'avgpool']);
      return apply(b, required(m, 'classifier'), isMap(features) ? b.flatten(features) : features);
    }
    case 'SqueezeExcitation': return squeezeExcitation(b, m, x);
    case 'DenseNet': {
      const features = map(m, apply(b, required(m, 'features'), x));
      return apply(b, required(m, 'classifier'), b.flatten(b.adaptiveAvgPool(b.relu(features, `${hint}.relu`), 1, 1)));
    }
    case '_DenseBlock': return denseBlock(b, m, x);
    case '_DenseLayer': return denseLayer(b, m, map(m, x));
    case 'Inception3': return inception3(b, m, x);
    case 'BasicConv2d': return b.relu(map(m, sequence(b, m, x, ['conv', 'bn'])), `${hint}.relu`);
    case 'InceptionA': case 'InceptionB': case 'InceptionC': case 'InceptionD': case 'InceptionE': return inceptionBlock(b, m, x);
    case 'SqueezeNet': {
      // forward(): features, classifier (Dropout, final_conv, ReLU, AdaptiveAvgPool2d), torch.flatten.
      const scores = sequence(b, m, x, ['features', 'classifier']);
      return isMap(scores) ? b.flatten(scores) : scores;
    }
    case 'Fire': return fire(b, m, x);
    case 'GoogLeNet': return googLeNet(b, m, x);
    case 'Inception': return googLeNetInception(b, m, x);
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
  if (!isVec(out)) refuse(tree, `ends with ${shapeText(out)}, not class scores: its last layer must give a flat vector (Flatten, Linear)`);
  return b.finish(out);
}
