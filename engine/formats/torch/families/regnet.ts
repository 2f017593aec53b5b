/**
 * torchvision's RegNet, X and Y (torchvision/models/regnet.py): stem, trunk_output (AnyStages of
 * ResBottleneckBlocks), avgpool, flatten, fc. SimpleStemIN, AnyStage and BottleneckTransform (a,
 * b, the Y models' se, c) are Sequentials; a ResBottleneckBlock adds its input, or its projection
 * when it has one, to f(x), then applies its activation.
 */
import type { TemplateBuilder } from '../../templates/builder';
import { child, map, required, type Flow } from '../convert-helpers';
import type { ModuleNode } from '../modules';
import type { Converters, Run } from './types';

function resBottleneckBlock(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  const input = map(m, x);
  const proj = child(m, 'proj');
  const shortcut = proj ? map(proj, run(proj, input)) : input;
  const sum = b.add(shortcut, map(m, run(required(m, 'f'), input)), `${m.path}.add`);
  return run(required(m, 'activation'), sum);
}

function regNet(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  const features = ['stem', 'trunk_output', 'avgpool'].reduce((y, n) => run(required(m, n), y), x);
  return run(required(m, 'fc'), b.flatten(map(m, features)));
}

export const regNetConverters: Converters = {
  'torchvision.models.regnet.RegNet': regNet,
  'torchvision.models.regnet.ResBottleneckBlock': resBottleneckBlock,
};
