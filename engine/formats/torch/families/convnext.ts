/**
 * torchvision's ConvNeXt (torchvision/models/convnext.py): features (a 4×4/4 stem with LayerNorm2d,
 * stages of CNBlocks, LayerNorm2d + 2×2/2 conv downsamplings), avgpool, classifier (LayerNorm2d,
 * Flatten, Linear). A CNBlock runs its block (7×7 depthwise conv, Permute to channels last,
 * LayerNorm, Linear, GELU, Linear, Permute back), multiplies by layer_scale ([C, 1, 1]), skips
 * StochasticDepth (eval) and adds the input. LayerNorm2d (permute, layer_norm, permute back) is
 * built as a LayerNorm over the channel axis of the NCHW map: the same numbers without the permutes.
 */
import type { TemplateBuilder } from '../../templates/builder';
import { map, required, type Flow } from '../convert-helpers';
import type { ModuleNode } from '../modules';
import type { Converters, Run } from './types';

function cnBlock(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  const input = map(m, x);
  const branch = map(m, run(required(m, 'block'), input));
  const key = `${m.path}.layer_scale`;
  const scale = b.tensor(key, 3);
  if (!scale) return input;
  if (scale.dims.join() !== `${branch.c},1,1`) b.problems.push(`${key} has shape [${scale.dims.join(', ')}], not [${branch.c}, 1, 1]`);
  const scaled = { ...branch, name: b.g.op('Mul', [b.param(key, scale), branch.name], {}, `${m.path}.layer_scale`) };
  return b.add(map(m, run(required(m, 'stochastic_depth'), scaled)), input, `${m.path}.add`);
}

function convNeXt(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  return ['features', 'avgpool', 'classifier'].reduce((y, n) => run(required(m, n), y), x);
}

export const convNeXtConverters: Converters = {
  'torchvision.models.convnext.ConvNeXt': convNeXt,
  'torchvision.models.convnext.CNBlock': cnBlock,
};
