/**
 * VGG-11/13/16/19, with and without BN, in torchvision's layout ('features.<i>' Sequential of
 * conv[, bn], relu and max-pools; AdaptiveAvgPool2d(7); 'classifier.0/3/6' linears with ReLU and
 * dropout between) and the CIFAR layout of the backdoor literature (same features, then a single
 * 'classifier' Linear(512, K) on the 1×1 map).
 *
 * The depth fixes the max-pool positions (every VGG config ends each of its five stages with one);
 * widths come from the weights. Before the classifier: flatten directly when the first linear takes
 * C·H·W features of the map the input size gives, otherwise torchvision's adaptive average pool to
 * 7×7 when it takes C·49. Default input: 224 when the classifier takes C·49 features, else the size
 * whose five halvings give the map the classifier expects (32 for the CIFAR layout).
 */
import type { StateDict, TemplateBuilder, Vec } from './builder';
import { ArchitectureError, type ArchitectureFamily } from './types';

/** Convolutions per stage; a max-pool closes each stage. */
const stages: Record<number, number[]> = {
  11: [1, 1, 2, 2, 2],
  13: [2, 2, 2, 2, 2],
  16: [2, 2, 3, 3, 3],
  19: [2, 2, 4, 4, 4],
};

function convCount(sd: StateDict): number {
  let n = 0;
  for (const [k, t] of sd) if (/^features\.\d+\.weight$/.test(k) && t.dims.length === 4) n++;
  return n;
}

/** The VGG depth with n convolutions (VGG-n has n - 3 convs and 3 linears in torchvision). */
function depthOf(n: number): number | undefined {
  const d = Object.entries(stages).find(([, s]) => s.reduce((a, b) => a + b, 0) === n)?.[0];
  return d === undefined ? undefined : Number(d);
}

function classifierLinears(sd: StateDict): string[] {
  if (sd.has('classifier.weight')) return ['classifier'];
  return [...sd.keys()]
    .map((k) => /^classifier\.(\d+)\.weight$/.exec(k))
    .filter((m): m is RegExpExecArray => !!m && sd.get(m[0])!.dims.length === 2)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b)
    .map((i) => `classifier.${i}`);
}

export const vggFamily: ArchitectureFamily = {
  id: 'vgg',
  names: Object.keys(stages).flatMap((d) => [`vgg${d}`, `vgg${d}_bn`]),
  recognises: (sd) => sd.get('features.0.weight')?.dims.length === 4 && classifierLinears(sd).length > 0 && depthOf(convCount(sd)) !== undefined,
  variantOf: (sd) => `vgg${depthOf(convCount(sd)) ?? convCount(sd) + 3}${sd.has('features.1.running_mean') ? '_bn' : ''}`,
  build(b, name, options): Vec {
    const m = /^vgg(\d+)(_bn)?$/.exec(name);
    const plan = m ? stages[Number(m[1])] : undefined;
    if (!m || !plan) throw new ArchitectureError(`unknown VGG variant ${name}`);
    const bn = !!m[2];
    const linears = classifierLinears(b.sd);
    const first = linears.length ? b.dims(`${linears[0]}.weight`) : undefined;
    const lastIndex = plan.reduce((a, c) => a + c * (bn ? 3 : 2) + 1, 0) - 1;
    // The last conv's width tells how many features per position the classifier sees.
    let lastConv = -1;
    for (let i = lastIndex; i >= 0 && lastConv < 0; i--) if (b.dims(`features.${i}.weight`)?.length === 4) lastConv = i;
    const channels = lastConv >= 0 ? b.dims(`features.${lastConv}.weight`)![0] : 512;
    const perPosition = first ? first[1] / channels : 1;
    const side = options.inputSize ? undefined : perPosition === 49 ? 224 : Number.isInteger(Math.sqrt(perPosition)) ? 32 * Math.sqrt(perPosition) : 224;
    let x = b.input(b.dims('features.0.weight')?.[1] ?? 3, options.inputSize?.height ?? side!, options.inputSize?.width ?? side!);
    let index = 0;
    for (const convs of plan) {
      for (let c = 0; c < convs; c++) {
        x = b.conv(x, `features.${index}`);
        if (bn) x = b.bn(x, `features.${index + 1}`);
        x = b.relu(x, `features.${index + (bn ? 2 : 1)}`);
        index += bn ? 3 : 2;
      }
      x = b.maxPool(x, 2, 2, 0, `features.${index}`);
      index++;
    }
    // torchvision's layout always pools to 7×7 (an identity on a 7×7 map), whatever the input size.
    if (first && first[1] === x.c * 49) x = b.adaptiveAvgPool(x, 7, 7);
    let v = b.flatten(x);
    linears.forEach((l, i) => {
      const last = i === linears.length - 1;
      v = b.linear(v, l);
      if (!last) v = b.relu(v, `${l}.relu`);
    });
    return v;
  },
};
