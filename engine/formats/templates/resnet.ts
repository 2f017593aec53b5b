/**
 * ResNet (torchvision and the CIFAR layout of the backdoor literature) and BackdoorBench's
 * pre-activation ResNet.
 *
 * Structure read from the keys: blocks per stage from 'layer<i>.<j>.' indices, bottleneck blocks
 * when 'conv3' exists, widths from weight shapes (so narrow or wide variants build too), the head
 * named 'fc' (torchvision), 'linear' (CIFAR code), 'classifier' or 'head', shortcuts named 'downsample'
 * or 'shortcut'.
 * Not in the weights, hence fixed: stage i > 1 starts with a stride-2 block; a 7×7 stem conv has
 * stride 2 and is followed by a 3×3/2 max-pool (ImageNet stem), a 3×3 stem conv has stride 1 and no
 * pool (CIFAR stem). The pooled features go through a global average pool — torchvision's
 * AdaptiveAvgPool2d(1), and equal to the CIFAR code's avg_pool2d(4) on 32×32 inputs.
 */
import type { Act, StateDict, TemplateBuilder, Vec } from './builder';
import { ArchitectureError, type ArchitectureFamily, type TemplateOptions } from './types';

interface Layout {
  blocks: number[];
  bottleneck: boolean;
}

const standard: Record<string, Layout> = {
  '18': { blocks: [2, 2, 2, 2], bottleneck: false },
  '34': { blocks: [3, 4, 6, 3], bottleneck: false },
  '50': { blocks: [3, 4, 6, 3], bottleneck: true },
  '101': { blocks: [3, 4, 23, 3], bottleneck: true },
  '152': { blocks: [3, 8, 36, 3], bottleneck: true },
};

function blocksOf(sd: StateDict): number[] {
  const counts: number[] = [];
  for (const key of sd.keys()) {
    const m = /^layer(\d+)\.(\d+)\./.exec(key);
    if (!m) continue;
    const layer = Number(m[1]) - 1, block = Number(m[2]);
    if (layer < 0 || layer > 7) continue;
    while (counts.length <= layer) counts.push(0);
    counts[layer] = Math.max(counts[layer], block + 1);
  }
  return counts;
}

function layoutOf(sd: StateDict): Layout {
  return { blocks: blocksOf(sd), bottleneck: sd.has('layer1.0.conv3.weight') };
}

function nameOf(prefix: string, layout: Layout): string {
  for (const [depth, l] of Object.entries(standard)) {
    if (l.bottleneck === layout.bottleneck && l.blocks.join() === layout.blocks.join()) return `${prefix}${depth}`;
  }
  return `${prefix}:${layout.bottleneck ? 'bottleneck' : 'basic'}:${layout.blocks.join(',')}`;
}

function parseName(prefix: string, name: string): Layout | undefined {
  if (name.startsWith(`${prefix}:`)) {
    const [, kind, counts] = name.split(':');
    return { bottleneck: kind === 'bottleneck', blocks: counts.split(',').map(Number) };
  }
  return standard[name.slice(prefix.length)];
}

function shortcutPrefix(b: TemplateBuilder, p: string): string | undefined {
  for (const s of ['downsample', 'shortcut']) if (b.has(`${p}.${s}.0.weight`)) return `${p}.${s}`;
  return undefined;
}

/** Names the classifier goes by: torchvision's 'fc', the CIFAR code's 'linear', others'. */
const HEADS = ['fc', 'linear', 'classifier', 'head'];

function headOf(sd: StateDict): string {
  return HEADS.find((h) => sd.has(`${h}.weight`)) ?? 'fc';
}

function head(b: TemplateBuilder, x: Act): Vec {
  return b.linear(b.flatten(b.adaptiveAvgPool(x, 1, 1)), headOf(b.sd));
}

function describeResnet(sd: StateDict): string[] {
  const keys = [...sd.keys()];
  const shortcuts = ['shortcut', 'downsample'].filter((s) => keys.some((k) => k.includes(`.${s}.`)));
  return [`head '${headOf(sd)}'`, ...(shortcuts.length ? [`shortcuts '${shortcuts.join("', '")}'`] : [])];
}

function size(options: TemplateOptions, fallback: number): { h: number; w: number } {
  return { h: options.inputSize?.height ?? fallback, w: options.inputSize?.width ?? fallback };
}

function residualBlock(b: TemplateBuilder, x: Act, p: string, stride: number, bottleneck: boolean): Act {
  let out: Act;
  if (bottleneck) {
    out = b.relu(b.bn(b.conv(x, `${p}.conv1`), `${p}.bn1`), `${p}.relu1`);
    out = b.relu(b.bn(b.conv(out, `${p}.conv2`, { stride }), `${p}.bn2`), `${p}.relu2`);
    out = b.bn(b.conv(out, `${p}.conv3`), `${p}.bn3`);
  } else {
    out = b.relu(b.bn(b.conv(x, `${p}.conv1`, { stride }), `${p}.bn1`), `${p}.relu1`);
    out = b.bn(b.conv(out, `${p}.conv2`), `${p}.bn2`);
  }
  const sp = shortcutPrefix(b, p);
  const shortcut = sp ? b.bn(b.conv(x, `${sp}.0`, { stride }), `${sp}.1`) : x;
  return b.relu(b.add(out, shortcut, `${p}.add`), `${p}.relu`);
}

export const resnetFamily: ArchitectureFamily = {
  id: 'resnet',
  names: ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152'],
  recognises: (sd) => sd.has('conv1.weight') && sd.has('bn1.weight') && sd.has('layer1.0.conv1.weight'),
  variantOf: (sd) => nameOf('resnet', layoutOf(sd)),
  describe: describeResnet,
  build(b, name, options) {
    const layout = parseName('resnet', name);
    if (!layout) throw new ArchitectureError(`unknown ResNet variant ${name}`);
    const stem = b.dims('conv1.weight');
    const imagenet = (stem?.[2] ?? 3) >= 7;
    const { h, w } = size(options, imagenet ? 224 : 32);
    let x = b.input(stem?.[1] ?? 3, h, w);
    x = b.relu(b.bn(b.conv(x, 'conv1', { stride: imagenet ? 2 : 1 }), 'bn1'), 'relu');
    if (imagenet) x = b.maxPool(x, 3, 2, 1);
    layout.blocks.forEach((count, i) => {
      for (let j = 0; j < count; j++) x = residualBlock(b, x, `layer${i + 1}.${j}`, j === 0 && i > 0 ? 2 : 1, layout.bottleneck);
    });
    return head(b, x);
  },
};

function preactBlock(b: TemplateBuilder, x: Act, p: string, stride: number, bottleneck: boolean): Act {
  const pre = b.relu(b.bn(x, `${p}.bn1`), `${p}.relu1`);
  const shortcut = b.has(`${p}.shortcut.0.weight`) ? b.conv(pre, `${p}.shortcut.0`, { stride }) : x;
  let out: Act;
  if (bottleneck) {
    out = b.conv(pre, `${p}.conv1`);
    out = b.conv(b.relu(b.bn(out, `${p}.bn2`), `${p}.relu2`), `${p}.conv2`, { stride });
    out = b.conv(b.relu(b.bn(out, `${p}.bn3`), `${p}.relu3`), `${p}.conv3`);
  } else {
    out = b.conv(pre, `${p}.conv1`, { stride });
    out = b.conv(b.relu(b.bn(out, `${p}.bn2`), `${p}.relu2`), `${p}.conv2`);
  }
  return b.add(out, shortcut, `${p}.add`);
}

/**
 * BackdoorBench's PreActResNet18 (models/preact_resnet.py): a 3×3 stem conv without BN, blocks that
 * apply BN and ReLU before each conv (the projection shortcut takes the pre-activated input), global
 * average pooling and 'linear'. Variants that end with a BN ('bn.*') get ReLU(BN(x)) before pooling.
 */
export const preactResnetFamily: ArchitectureFamily = {
  id: 'preactresnet',
  names: ['preactresnet18', 'preactresnet34', 'preactresnet50', 'preactresnet101', 'preactresnet152'],
  recognises: (sd) => sd.has('conv1.weight') && !sd.has('bn1.weight') && sd.has('layer1.0.bn1.weight') && sd.has('layer1.0.conv1.weight'),
  variantOf: (sd) => nameOf('preactresnet', layoutOf(sd)),
  describe: describeResnet,
  build(b, name, options) {
    const layout = parseName('preactresnet', name);
    if (!layout) throw new ArchitectureError(`unknown pre-activation ResNet variant ${name}`);
    const { h, w } = size(options, 32);
    let x = b.input(b.dims('conv1.weight')?.[1] ?? 3, h, w);
    x = b.conv(x, 'conv1');
    layout.blocks.forEach((count, i) => {
      for (let j = 0; j < count; j++) x = preactBlock(b, x, `layer${i + 1}.${j}`, j === 0 && i > 0 ? 2 : 1, layout.bottleneck);
    });
    if (b.has('bn.weight')) x = b.relu(b.bn(x, 'bn'), 'relu');
    return head(b, x);
  },
};
