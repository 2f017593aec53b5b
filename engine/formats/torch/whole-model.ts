/**
 * A whole pickled model (torch.save(model)) as a LoadedModel: the module tree (modules.ts) is built
 * module by module (convert.ts), and its state_dict is also handed to the architecture templates;
 * when a template builds the very same graph, the report names it ("resnet18 template, matched by
 * key names; …: the same graph"), so a whole pickle and its state_dict read alike. The graph used is always the
 * module-by-module one: it follows the pickled strides, paddings, pools and activations, where a
 * template would have to assume them.
 *
 * Input size: --size, else the template's choice (the data's size for a size-agnostic network, or
 * its default), else for a size-agnostic tree the data's size or the templates' defaults (224 for
 * torchvision's ImageNet models, 32 for a 3×3 ResNet stem, 28 for one channel, else 32), else the
 * first common size whose feature map fits the first Linear layer.
 */
import { BackdoorLensError } from '../../errors';
import type { OnnxModel } from '../../graph/model';
import type { Tensor } from '../../tensor';
import { ArchitectureError, buildFromStateDict, type BuiltModel } from '../templates';
import { TemplateMismatch } from '../templates/builder';
import type { LoadedModel, LoadOptions } from '../types';
import { loadedFromFile, type WeightsSource } from '../weights';
import { ConversionError, convertTree, type ConvertedModel } from './convert';
import { modulesOf, SEQUENTIAL_KINDS, stateDictOf, type ModuleNode } from './modules';
import { allocate } from './tensors';

/** Sizes tried, in order, when nothing else says (as the plain-CNN template tries them). */
const COMMON_SIZES = [28, 32, 64, 224, 96, 128, 256, 48, 56, 112, 160];

type Size = { height: number; width: number };

interface Choice {
  converted: ConvertedModel;
  from: 'given' | 'data' | 'template' | 'default' | 'fit' | 'image_size';
}

function className(tree: ModuleNode): string {
  return tree.cls.startsWith('torchvision.') ? `torchvision ${tree.kind}` : `torch.nn ${tree.kind}`;
}

/** The input channels: the first layer with weights (or a BatchNorm2d) says; a leading Flatten leaves them open. */
function inputChannels(tree: ModuleNode): number | 'flat' {
  for (const m of modulesOf(tree)) {
    if (m.kind === 'Conv2d') {
      const w = m.params.get('weight');
      const groups = m.attrs.get('groups');
      if (w && typeof groups === 'number') return w.dims[1] * groups;
    }
    if (m.kind === 'BatchNorm2d' && m.buffers.get('running_mean')) return m.buffers.get('running_mean')!.dims[0];
    if (m.kind === 'Flatten') return 'flat';
    if (m.kind === 'Linear' || m.kind === 'BatchNorm1d') {
      throw new ConversionError(`its first layer with weights, module '${m.path}' (${m.kind}), takes a feature vector: Backdoor Lens reads image classifiers ([N, C, H, W] inputs)`);
    }
  }
  throw new ConversionError('has no layer that says how many input channels it takes (no Conv2d, BatchNorm2d or Linear)');
}

/** The first Linear layer's input features, for a Sequential that starts with Flatten. */
function firstLinearFeatures(tree: ModuleNode): number | undefined {
  return modulesOf(tree).find((m) => m.kind === 'Linear')?.params.get('weight')?.dims[1];
}

/**
 * The state_dict's shapes without its values: the size search and the template comparison only
 * read shapes, so neither copies the weights (a VGG-16 holds half a gigabyte of them).
 */
function shapesOf(sd: Map<string, Tensor>): Map<string, Tensor> {
  return new Map([...sd].map(([k, t]) => [k, { dtype: t.dtype, dims: t.dims, data: allocate(t.dtype, 0) }]));
}

function attempt(tree: ModuleNode, sd: Map<string, Tensor>, input: [number, number, number]): ConvertedModel | TemplateMismatch {
  try {
    return convertTree(tree, sd, input);
  } catch (e) {
    if (e instanceof TemplateMismatch) return e;
    throw e;
  }
}

function mismatchText(e: TemplateMismatch): string {
  const d = e.details;
  const parts = [
    ...(d.problems.length ? [d.problems.slice(0, 3).join('; ')] : []),
    ...(d.unexpected.length ? [`weights its forward() never uses: ${d.unexpected.slice(0, 4).join(', ')}${d.unexpected.length > 4 ? ', …' : ''}`] : []),
    ...(d.missing.length ? [`missing weights: ${d.missing.slice(0, 4).join(', ')}`] : []),
  ];
  return parts.join('; ');
}

/** The size to build at, and the graph built at it. */
function choose(tree: ModuleNode, sd: Map<string, Tensor>, options: LoadOptions, template: BuiltModel | undefined): Choice {
  const channels = inputChannels(tree);
  const at = (size: Size, c?: number) => attempt(tree, sd, [c ?? (channels === 'flat' ? 3 : channels), size.height, size.width]);
  if (options.inputSize) {
    const given = channels === 'flat' ? flatChannels(tree, options.inputSize) : channels;
    const built = at(options.inputSize, given);
    if (built instanceof TemplateMismatch) throw new ConversionError(`does not fit --size ${options.inputSize.height}×${options.inputSize.width}: ${mismatchText(built)}`);
    return { converted: built, from: 'given' };
  }
  if (template && channels !== 'flat') {
    const [, h, w] = template.input;
    const built = at({ height: h, width: w });
    if (!(built instanceof TemplateMismatch)) return { converted: built, from: 'template' };
  }
  const sizes: Size[] = [];
  if (options.dataSize) sizes.push(options.dataSize);
  const preferred = [defaultSide(tree, channels), ...COMMON_SIZES];
  for (const s of preferred) sizes.push({ height: s, width: s });
  let first: TemplateMismatch | undefined;
  for (const size of sizes) {
    const built = at(size, channels === 'flat' ? flatChannels(tree, size) : channels);
    if (built instanceof TemplateMismatch) {
      first ??= built;
      continue;
    }
    // A network that takes any size takes the data's; one that fixes it fits only its own.
    // A ViT builds at its image_size only, whatever the data's size.
    if (tree.kind === 'VisionTransformer') return { converted: built, from: 'image_size' };
    if (size === options.dataSize) return { converted: built, from: 'data' };
    return { converted: built, from: built.sizeAgnostic ? 'default' : 'fit' };
  }
  throw new ConversionError(`fits no common input size (${COMMON_SIZES.join(', ')}): ${first ? mismatchText(first) : 'no size tried'}; give the input size with --size H×W`);
}

/**
 * The size tried first without data, as the templates default: 224 for torchvision's ImageNet
 * models (299 for Inception-v3), but 32 for a ResNet whose stem is a 3×3 conv (the CIFAR edit); 28
 * for one channel, else 32.
 */
function defaultSide(tree: ModuleNode, channels: number | 'flat'): number {
  if (tree.kind === 'Inception3') return 299;
  // A ViT's pos_embedding fixes its size: image_size.
  const vitSide = tree.kind === 'VisionTransformer' ? tree.attrs.get('image_size') : undefined;
  if (typeof vitSide === 'number' && Number.isInteger(vitSide) && vitSide > 0 && vitSide < 2 ** 16) return vitSide;
  if (tree.kind === 'ResNet') return (tree.children.find((c) => c.name === 'conv1')?.module.params.get('weight')?.dims[2] ?? 7) >= 7 ? 224 : 32;
  if (tree.cls.startsWith('torchvision.')) return 224;
  return channels === 1 ? 28 : 32;
}

/** Channels of a Sequential that flattens its input first: C·H·W must be the first Linear's input (1 or 3 channels). */
function flatChannels(tree: ModuleNode, size: Size): number {
  const features = firstLinearFeatures(tree) ?? 0;
  for (const c of [1, 3]) if (c * size.height * size.width === features) return c;
  return features % 3 === 0 && features % (size.height * size.width) !== 0 ? 3 : 1;
}

/**
 * Where two graphs first compute differently, or undefined when they are the same graph up to
 * names: each tensor is known by its role (the input, a state_dict key, a constant by value, output
 * j of node i) and each op by its type, attributes and inputs. `renamed` maps b's initializers to
 * the keys they came from (a template matched by structure renames them).
 */
function graphDifference(a: OnnxModel, b: OnnxModel, keys: ReadonlySet<string>, renamed: ReadonlyMap<string, string>): string | undefined {
  const signatures = (m: OnnxModel, original: (n: string) => string) => {
    const names = new Map<string, string>();
    for (const i of m.inputs()) names.set(i.name, 'input');
    for (const n of m.initializerNames()) {
      if (keys.has(original(n))) names.set(n, `weight ${original(n)}`);
      else {
        const t = m.initializer(n)!;
        names.set(n, `constant [${t.dims.join(',')}] ${Array.from(t.data as ArrayLike<number>, Number).join(',')}`);
      }
    }
    m.nodes.forEach((node, i) => node.output.forEach((o, j) => names.set(o, `node ${i}:${j}`)));
    return m.nodes.map((node) => {
      const inputs = node.input.map((x) => names.get(x) ?? x);
      if (node.op_type === 'Add' || node.op_type === 'Mul') inputs.sort();
      const attrs = [...(node.attribute ?? [])].sort((x, y) => x.name!.localeCompare(y.name!)).map((t) => JSON.stringify([t.name, t.i ?? null, t.f === undefined || t.f === null ? null : Math.fround(t.f), t.ints ?? null, t.floats ?? null]));
      return { op: node.op_type, text: `${node.op_type}(${inputs.join('; ')}) ${attrs.join(' ')}`, name: node.name };
    });
  };
  const x = signatures(a, (n) => n), y = signatures(b, (n) => renamed.get(n) ?? n);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i]?.text === y[i]?.text) continue;
    const mine = x[i] ? `${x[i].op} '${(x[i].name ?? '').replace(/_\d+$/, '')}'` : 'nothing';
    const theirs = y[i] ? `${y[i].op} '${(y[i].name ?? '').replace(/_\d+$/, '')}'` : 'nothing';
    return `op ${i + 1} is ${mine} here, ${theirs} in the template`;
  }
  return undefined;
}

function sizeNote(input: [number, number, number], choice: Choice, template: BuiltModel | undefined): string {
  const [, h, w] = input;
  switch (choice.from) {
    case 'given': return `input ${h}×${w} from --size`;
    case 'data': return `input ${h}×${w} from the data (the network pools adaptively; --size overrides)`;
    case 'template':
      if (template?.inputSizeFrom === 'data') return `input ${h}×${w} from the data (the network pools adaptively; --size overrides)`;
      return `input ${h}×${w}, the template's default (${choice.converted.sizeAgnostic ? 'the network pools adaptively: data of another size sets it' : 'its head fixes the size'})`;
    case 'default': return `input ${h}×${w} by default (the network pools adaptively: data of another size sets it)`;
    case 'fit': return `input ${h}×${w}, the first common size whose feature map fits the first Linear layer (--size overrides)`;
    case 'image_size': return `input ${h}×${w}, the ViT's image_size (its position embedding fixes the size)`;
  }
}

function shorten(text: string, n: number): string {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/**
 * Builds a LoadedModel from a whole pickled model. Its notes: what the file holds, which template
 * builds the same graph (or why none does), where the input size came from, and whether it was
 * saved in training mode.
 */
export function modelFromModuleTree(src: Omit<WeightsSource, 'weights'>, tree: ModuleNode, options: LoadOptions): LoadedModel {
  const what = className(tree);
  if (!SEQUENTIAL_KINDS.has(tree.kind) && !tree.cls.startsWith('torchvision.models.')) {
    throw new BackdoorLensError('unsupported-model', `holds a single pickled ${tree.kind} layer, not a classifier: save the whole model, its state_dict, or export it to ONNX`, { file: src.path });
  }
  const sd = stateDictOf(tree);
  const shapes = shapesOf(sd);
  let template: BuiltModel | undefined;
  let templateMiss: string | undefined;
  try {
    template = buildFromStateDict(shapes, { arch: options.arch, inputSize: options.inputSize, dataSize: options.dataSize });
  } catch (e) {
    if (!(e instanceof ArchitectureError)) throw e;
    templateMiss = e.message;
  }
  let choice: Choice;
  let built: ConvertedModel;
  try {
    choice = choose(tree, shapes, options, template);
    built = convertTree(tree, sd, choice.converted.input);
  } catch (e) {
    if (e instanceof ConversionError) throw new BackdoorLensError('unsupported-model', `holds a whole pickled ${what} that cannot be built: ${e.message}`, { file: src.path, cause: e });
    throw e;
  }
  const layers = modulesOf(tree).filter((m) => m.children.length === 0).length;
  const head = `whole pickled ${what} (torch.save(model)), built from its ${layers} layers`;
  let match: string;
  let architecture: string;
  const keys = new Set(sd.keys());
  const sameSize = template && template.input.every((d, i) => d === built.input[i]);
  const difference = template && sameSize ? graphDifference(choice.converted.onnx, template.onnx, keys, template.sourceKeys) : undefined;
  if (template && sameSize && difference === undefined) {
    architecture = template.architecture;
    match = `${template.match}: the same graph`;
  } else {
    architecture = SEQUENTIAL_KINDS.has(tree.kind) ? 'sequential' : tree.kind.toLowerCase();
    const reason = templateMiss && !templateMiss.startsWith('no architecture template') ? ` (${shorten(templateMiss.split(';')[0], 90)})` : '';
    match = !template ? `no template builds it${reason}` : !sameSize ? `the ${template.architecture} template picks another input size` : `not the ${template.architecture} template's graph: ${difference}`;
  }
  const notes = [head, match, sizeNote(built.input, choice, template)];
  if (tree.training) notes.push('saved in training mode; run as model.eval() would run it (BatchNorm uses its running statistics, dropout is off)');
  return loadedFromFile(src, {
    onnx: built.onnx,
    numClasses: built.numClasses,
    architecture,
    sourceKeys: new Map(built.onnx.initializerNames().filter((n) => keys.has(n)).map((n) => [n, n])),
    notes,
    sizeAgnostic: built.sizeAgnostic,
  });
}
