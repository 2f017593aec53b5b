/**
 * torchvision's EfficientNet, B0…B7 and V2 (torchvision/models/efficientnet.py): features,
 * avgpool, flatten, classifier. MBConv and FusedMBConv run their block (Conv2dNormActivation with
 * SiLU, SqueezeExcitation, …) and add the input back when use_res_connect; their StochasticDepth
 * drops rows only in training, so in eval it is the identity.
 */
import type { TemplateBuilder } from '../../templates/builder';
import { map, required, type Flow } from '../convert-helpers';
import type { ModuleNode } from '../modules';
import type { Converters, Run } from './types';

function mbConv(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  const input = map(m, x);
  const result = map(m, run(required(m, 'stochastic_depth'), run(required(m, 'block'), input)));
  return m.attrs.get('use_res_connect') === true ? b.add(result, input, `${m.path}.add`) : result;
}

function efficientNet(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  const features = ['features', 'avgpool'].reduce((y, n) => run(required(m, n), y), x);
  return run(required(m, 'classifier'), b.flatten(map(m, features)));
}

export const efficientNetConverters: Converters = {
  'torchvision.models.efficientnet.EfficientNet': efficientNet,
  'torchvision.models.efficientnet.MBConv': mbConv,
  'torchvision.models.efficientnet.FusedMBConv': mbConv,
};
