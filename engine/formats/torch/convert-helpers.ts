/**
 * What every module converter shares (convert.ts and the families under families/): the flows
 * between modules, reading a module's pickled hyperparameters, and refusing what is not built.
 */
import type { Act, Vec } from '../templates/builder';
import { describe, sequenceItems, type PyValue } from '../pickle/values';
import type { ModuleNode } from './modules';

/** The tree holds something the converter does not build (a class, a hyperparameter); no input size helps. */
export class ConversionError extends Error {}

/**
 * A tensor laid out channels last, [N, ...dims]: ViT's tokens [L, D], the [H, W, C] maps inside
 * ConvNeXt's blocks and Swin. torch.nn.Linear, LayerNorm and GELU act on its last dimension.
 */
export interface Tokens {
  name: string;
  dims: number[];
}

/** What flows between modules: a [C, H, W] map, a flat vector, or a channels-last tensor. */
export type Flow = Act | Vec | Tokens;

export const isMap = (x: Flow): x is Act => 'c' in x;
export const isVec = (x: Flow): x is Vec => 'n' in x;
export const isTokens = (x: Flow): x is Tokens => 'dims' in x;

/** What a flow is, for messages. */
export function shapeText(x: Flow): string {
  return isMap(x) ? `a [${x.c}, ${x.h}, ${x.w}] feature map` : isVec(x) ? `a flat vector of ${x.n}` : `a channels-last [${x.dims.join(', ')}] tensor`;
}

export function where(m: ModuleNode): string {
  return `${m.path === '' ? 'the root module' : `module '${m.path}'`} (${m.kind})`;
}

export function refuse(m: ModuleNode, what: string): never {
  throw new ConversionError(`${where(m)} ${what}`);
}

export function attr(m: ModuleNode, name: string): PyValue {
  const v = m.attrs.get(name);
  if (v === undefined) refuse(m, `has no '${name}' attribute`);
  return v;
}

export function int(m: ModuleNode, name: string, v: PyValue = attr(m, name)): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) refuse(m, `has ${name} ${describe(v)}, not an integer`);
  // A setting past 2^31 is no real layer, and would turn feature-map sizes into Infinity.
  if (Math.abs(v) >= 2 ** 31) refuse(m, `has ${name} ${describe(v)}, too large to be a layer setting`);
  return v;
}

export function float(m: ModuleNode, name: string): number {
  const v = attr(m, name);
  if (typeof v !== 'number') refuse(m, `has ${name} ${describe(v)}, not a number`);
  return v;
}

/** An int or a pair of ints (torch's _pair). */
/** A two-dimensional setting; kernel, stride and dilation are at least 1, padding at least 0 (a stride of 0 has no output size). */
export function pair(m: ModuleNode, name: string, v: PyValue = attr(m, name)): [number, number] {
  const items = typeof v === 'number' ? [v] : sequenceItems(v);
  if (!items || (items.length !== 1 && items.length !== 2)) refuse(m, `has ${name} ${describe(v)}, not a size of two dimensions`);
  const [a, b] = [int(m, name, items[0]), int(m, name, items[items.length - 1])];
  const least = name === 'padding' || name === 'output_padding' ? 0 : 1;
  if (a < least || b < least) refuse(m, `has ${name} ${describe(v)}; it must be at least ${least}`);
  return [a, b];
}

export function flag(m: ModuleNode, name: string, fallback: boolean): boolean {
  const v = m.attrs.get(name);
  return v === undefined || v === null ? fallback : v === true;
}

export function map(m: ModuleNode, x: Flow): Act {
  if (!isMap(x)) refuse(m, `gets ${shapeText(x)}; it needs a [C, H, W] feature map`);
  return x;
}

export function vec(m: ModuleNode, x: Flow): Vec {
  if (isMap(x)) refuse(m, 'gets a [C, H, W] feature map; a Flatten must come before it');
  if (!isVec(x)) refuse(m, `gets ${shapeText(x)}; it needs a flat feature vector`);
  return x;
}

export function tokens(m: ModuleNode, x: Flow): Tokens {
  if (!isTokens(x)) refuse(m, `gets ${shapeText(x)}; it needs a channels-last tensor (a Permute or a reshape must come before it)`);
  return x;
}

export function child(m: ModuleNode, name: string): ModuleNode | undefined {
  return m.children.find((c) => c.name === name)?.module;
}

export function required(m: ModuleNode, name: string): ModuleNode {
  return child(m, name) ?? refuse(m, `has no submodule '${name}', which its forward() uses`);
}

