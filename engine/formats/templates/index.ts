/**
 * Architecture templates: from a state_dict (weights without the architecture) to an ONNX graph.
 * The family is picked by key names and shapes, or named with --arch; either way the weights must
 * fit exactly — a key the template needs and does not find, or one it does not use, is an error.
 */
import type { OnnxModel } from '../../graph/model';
import type { Tensor } from '../../tensor';
import { keyViews, type KeyView } from './aliases';
import { TemplateBuilder, TemplateMismatch } from './builder';
import { mobilenetV2Family } from './mobilenet';
import { plainCnnFamily } from './plain-cnn';
import { preactResnetFamily, resnetFamily } from './resnet';
import { ArchitectureError, type ArchitectureFamily, type SizeOptions, type TemplateOptions } from './types';
import { vggFamily } from './vgg';

export type { StateDict } from './builder';
export { ArchitectureError, type InputSize, type TemplateOptions, type SizeOptions, type ArchitectureFamily } from './types';

/** Asked in this order; the plain CNN is the fallback. */
export const architectureFamilies: readonly ArchitectureFamily[] = [mobilenetV2Family, vggFamily, preactResnetFamily, resnetFamily, plainCnnFamily];

/** Every --arch name, in the order help texts list them. */
export const architectureNames: readonly string[] = [preactResnetFamily, resnetFamily, vggFamily, mobilenetV2Family, plainCnnFamily].flatMap((f) => f.names);

export function isArchitectureName(name: string): boolean {
  return familyFor(name) !== undefined;
}

export interface BuiltModel {
  onnx: OnnxModel;
  architecture: string;
  numClasses: number;
  /** [C, H, W] of the input. */
  input: [number, number, number];
  /** Initializer name → the key it came from, as the file spells it (prefixes included). */
  sourceKeys: Map<string, string>;
  /** Which template matched and how, for the report ("resnet18 template by structure: …"). */
  match: string;
  /** Whether the network takes any input size (no flatten of a map an adaptive pool did not make). */
  sizeAgnostic: boolean;
  /** Where the input size came from. */
  inputSizeFrom: 'given' | 'data' | 'default';
}

function familyFor(name: string): ArchitectureFamily | undefined {
  return architectureFamilies.find((f) => f.names.includes(name)) ?? architectureFamilies.find((f) => name.startsWith(`${f.id}:`));
}

function list(keys: string[], n = 8): string {
  return keys.slice(0, n).join(', ') + (keys.length > n ? `, … (${keys.length} in all)` : '');
}

function mismatchMessage(name: string, e: TemplateMismatch, requested: boolean): string {
  const parts: string[] = [];
  if (e.details.missing.length) parts.push(`missing keys: ${list(e.details.missing)}`);
  if (e.details.unexpected.length) parts.push(`unexpected keys: ${list(e.details.unexpected)}`);
  if (e.details.problems.length) parts.push(e.details.problems.slice(0, 4).join('; '));
  const how = requested ? `do not fit --arch ${name}` : `look like ${name} but do not fit its template`;
  return `the weights ${how}: ${parts.join('; ')}`;
}

type Attempt = { ok: true; model: ReturnType<TemplateBuilder['finish']> } | { ok: false; error: TemplateMismatch };

function attempt(family: ArchitectureFamily, view: KeyView, name: string, options: TemplateOptions): Attempt {
  const b = new TemplateBuilder(view.sd);
  try {
    return { ok: true, model: b.finish(family.build(b, name, options)) };
  } catch (e) {
    if (e instanceof TemplateMismatch) return { ok: false, error: e };
    throw e;
  }
}

/**
 * The template's graph at the given size, else — for a size-agnostic network — at the data's,
 * else at the template's default. A data size the weights cannot take (too small for the
 * strides) leaves the default, and the data loader then says the sizes differ.
 */
function sized(family: ArchitectureFamily, view: KeyView, name: string, options: SizeOptions): Omit<BuiltModel, 'sourceKeys' | 'match'> | TemplateMismatch {
  const first = attempt(family, view, name, { inputSize: options.inputSize });
  if (!first.ok) return first.error;
  const base = { architecture: name, numClasses: first.model.numClasses, sizeAgnostic: first.model.sizeAgnostic };
  const data = options.dataSize;
  const [, h, w] = first.model.input;
  if (!options.inputSize && data && first.model.sizeAgnostic && (data.height !== h || data.width !== w)) {
    const atData = attempt(family, view, name, { inputSize: data });
    if (atData.ok) return { ...base, onnx: atData.model.onnx, input: atData.model.input, inputSizeFrom: 'data' };
  }
  return { ...base, onnx: first.model.onnx, input: first.model.input, inputSizeFrom: options.inputSize ? 'given' : 'default' };
}

function finished(built: Omit<BuiltModel, 'sourceKeys' | 'match'>, family: ArchitectureFamily, view: KeyView): BuiltModel {
  const sourceKeys = new Map<string, string>();
  for (const init of built.onnx.initializerNames()) {
    const key = view.original.get(init);
    if (key !== undefined) sourceKeys.set(init, key);
  }
  const how = view.renames.length ? `matched by structure: ${view.renames.join('; ')}` : 'matched by key names';
  const names = family.describe?.(view.sd) ?? [];
  return { ...built, sourceKeys, match: `${built.architecture} template, ${how}${names.length ? `; ${names.join(', ')}` : ''}` };
}

/**
 * Builds the graph for a state_dict, with the named template or the one its keys call for. The
 * file's key names are tried first, then the structure-preserving renamings of aliases.ts.
 */
export function buildFromStateDict(weights: Map<string, Tensor>, options: SizeOptions & { arch?: string } = {}): BuiltModel {
  if (weights.size === 0) throw new ArchitectureError('the state_dict is empty');
  const views = keyViews(weights);
  if (options.arch) {
    const family = familyFor(options.arch);
    if (!family) throw new ArchitectureError(`unknown architecture '${options.arch}'; templates: ${architectureNames.join(', ')}`);
    let failure: { error: TemplateMismatch; view: KeyView } | undefined;
    for (const view of views) {
      const built = sized(family, view, options.arch, options);
      if (!(built instanceof TemplateMismatch)) return finished(built, family, view);
      // Report against the most renamed view the family recognises, else the file's own names.
      if (!failure || family.recognises(view.sd)) failure = { error: built, view };
    }
    throw new ArchitectureError(mismatchMessage(options.arch, failure!.error, true));
  }
  let failure: { error: TemplateMismatch; name: string } | undefined;
  for (const view of views) {
    const family = architectureFamilies.find((f) => f.recognises(view.sd));
    if (!family) continue;
    const name = family.variantOf(view.sd);
    const built = sized(family, view, name, options);
    if (!(built instanceof TemplateMismatch)) return finished(built, family, view);
    failure ??= { error: built, name };
  }
  if (failure) throw new ArchitectureError(mismatchMessage(failure.name, failure.error, false));
  throw new ArchitectureError(`no architecture template recognises these weights (keys ${list([...weights.keys()], 6)}); give --arch, one of ${architectureNames.join(', ')}`);
}
