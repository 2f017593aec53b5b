/** The gradient rule of every supported op. */
import { activationRules } from './activations';
import { arithmeticRules } from './arithmetic';
import { convRules } from './conv';
import { linearRules } from './linear';
import { normalizationRules } from './normalization';
import { poolRules } from './pool';
import { reduceRules } from './reduce';
import { selectRules } from './select';
import { shapeRules } from './shape';
import { smoothRules } from './smooth';
import type { GradientRule } from './types';

export const gradientRules: ReadonlyMap<string, GradientRule> = new Map(
  Object.entries({ ...activationRules, ...arithmeticRules, ...convRules, ...linearRules, ...normalizationRules, ...poolRules, ...reduceRules, ...selectRules, ...shapeRules, ...smoothRules }),
);

export type { GradientRule, RuleContext } from './types';
