/**
 * torchvision's ShuffleNetV2 (torchvision/models/shufflenetv2.py). Its InvertedResidual (not
 * MobileNet's class of the same name) splits the channels in two when stride is 1 and runs only
 * the second half, else runs both branches on the whole input; then concatenates and shuffles the
 * channels (channel_shuffle: view as [N, 2, C/2, H, W], swap the two, view back).
 */
import type { Act, TemplateBuilder } from '../../templates/builder';
import { int, map, refuse, required, type Flow } from '../convert-helpers';
import { reshape, transpose } from '../layers';
import type { ModuleNode } from '../modules';
import type { Converters, Run } from './types';

/** channel_shuffle(x, groups) as Reshape → Transpose → Reshape (the batch kept by a 0). */
export function channelShuffle(b: TemplateBuilder, x: Act, groups: number, hint: string): Act {
  if (x.c % groups) b.problems.push(`${hint} shuffles ${x.c} channels in ${groups} groups`);
  const grouped = reshape(b, x.name, [0, groups, Math.floor(x.c / groups), x.h, x.w], `${hint}.group`);
  const swapped = transpose(b, grouped, [0, 2, 1, 3, 4], `${hint}.swap`);
  return { ...x, name: reshape(b, swapped, [0, x.c, x.h, x.w], hint) };
}

/** x.chunk(2, dim=1): ceil(C/2) channels, then the rest. */
function halves(b: TemplateBuilder, x: Act, hint: string): [Act, Act] {
  const first = Math.ceil(x.c / 2), second = x.c - first;
  const [a, c] = b.g.node('Split', [x.name, b.g.constantInt64([first, second], `${hint}.sizes`)], { axis: 1 }, { name: hint, outputs: 2 });
  return [{ ...x, name: a, c: first }, { ...x, name: c, c: second }];
}

function invertedResidual(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Act {
  const input = map(m, x);
  const stride = int(m, 'stride');
  let out: Act;
  if (stride === 1) {
    if (input.c % 2) refuse(m, `splits ${input.c} channels in two halves; it needs an even number`);
    const [kept, branch] = halves(b, input, `${m.path}.chunk`);
    out = b.concat([kept, map(m, run(required(m, 'branch2'), branch))], `${m.path}.cat`);
  } else {
    out = b.concat([map(m, run(required(m, 'branch1'), input)), map(m, run(required(m, 'branch2'), input))], `${m.path}.cat`);
  }
  return channelShuffle(b, out, 2, `${m.path}.shuffle`);
}

/** conv1, maxpool, stage2…4, conv5, x.mean([2, 3]), fc. */
function shuffleNetV2(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  const features = ['conv1', 'maxpool', 'stage2', 'stage3', 'stage4', 'conv5'].reduce((y, n) => run(required(m, n), y), x);
  const pooled = b.adaptiveAvgPool(map(m, features), 1, 1, 'globalpool');
  return run(required(m, 'fc'), b.flatten(pooled));
}

export const shuffleNetConverters: Converters = {
  'torchvision.models.shufflenetv2.ShuffleNetV2': shuffleNetV2,
  'torchvision.models.shufflenetv2.InvertedResidual': invertedResidual,
};
