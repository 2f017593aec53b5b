/**
 * The layers of the newer torchvision families that have no one-op ONNX form at opset 13 (the
 * opset every built graph uses): LayerNorm, GELU, a Linear on a channels-last tensor, Permute.
 * Each is written with ops the gradient-graph builder has rules for (engine/autodiff/rules):
 * LayerNorm as ReduceMean, Sub, Mul, Add, Sqrt, Div (torch.onnx's own decomposition below opset
 * 17), GELU as Div, Erf, Add, Mul (its exact, erf form), Linear as Transpose and MatMul.
 */
import type { Act, TemplateBuilder } from '../templates/builder';
import { isMap, isTokens, refuse, shapeText, type Flow, type Tokens } from './convert-helpers';
import type { ModuleNode } from './modules';

/** A Reshape to a constant shape; 0 keeps the batch (ONNX's copy of the input dimension). */
export function reshape(b: TemplateBuilder, x: string, shape: number[], hint: string): string {
  return b.g.op('Reshape', [x, b.g.constantInt64(shape, `${hint}.shape`)], {}, hint);
}

export function transpose(b: TemplateBuilder, x: string, perm: number[], hint: string): string {
  return b.g.op('Transpose', [x], { perm }, hint);
}

/**
 * torch.nn.LayerNorm over one axis (the last one of a channels-last tensor, or the channels of an
 * NCHW map for ConvNeXt's LayerNorm2d): (x − mean) / sqrt(var + eps) · weight + bias, with the
 * biased variance torch uses. The weight and bias keep their state_dict shape [C]; on axis 1 a
 * Reshape to [C, 1, 1] broadcasts them.
 */
export function layerNorm(b: TemplateBuilder, x: string, prefix: string, eps: number, axis: 1 | -1, channels: number): string {
  const mean = b.g.op('ReduceMean', [x], { axes: [axis], keepdims: 1 }, `${prefix}.mean`);
  const centred = b.g.op('Sub', [x, mean], {}, `${prefix}.centre`);
  const variance = b.g.op('ReduceMean', [b.g.op('Mul', [centred, centred], {}, `${prefix}.square`)], { axes: [axis], keepdims: 1 }, `${prefix}.var`);
  const std = b.g.op('Sqrt', [b.g.op('Add', [variance, b.g.constantFloat([eps], [], `${prefix}.eps`)], {}, `${prefix}.var_eps`)], {}, `${prefix}.std`);
  let y = b.g.op('Div', [centred, std], {}, `${prefix}.normalised`);
  const affine = (key: 'weight' | 'bias', op: 'Mul' | 'Add') => {
    if (!b.has(`${prefix}.${key}`)) return;
    const t = b.tensor(`${prefix}.${key}`, 1);
    if (!t) return;
    if (t.dims[0] !== channels) {
      b.problems.push(`${prefix}.${key} has ${t.dims[0]} values but normalises ${channels} channels`);
      return;
    }
    const p = b.param(`${prefix}.${key}`, t);
    y = b.g.op(op, [y, axis === 1 ? reshape(b, p, [channels, 1, 1], `${prefix}.${key}.channels`) : p], {}, `${prefix}.${key === 'weight' ? 'scale' : 'shift'}`);
  };
  affine('weight', 'Mul');
  affine('bias', 'Add');
  return y;
}

/** nn.GELU(approximate='none'): x · (1 + erf(x / √2)) / 2. */
export function gelu(b: TemplateBuilder, x: string, hint: string): string {
  const erf = b.g.op('Erf', [b.g.op('Div', [x, b.g.constantFloat([Math.SQRT2], [], `${hint}.sqrt2`)], {}, `${hint}.scaled`)], {}, `${hint}.erf`);
  const half = b.g.op('Mul', [x, b.g.constantFloat([0.5], [], `${hint}.half`)], {}, `${hint}.half`);
  return b.g.op('Mul', [half, b.g.op('Add', [erf, b.g.constantFloat([1], [], `${hint}.one`)], {}, `${hint}.plus1`)], {}, hint);
}

/** x · Wᵀ + b on the last dimension of a channels-last tensor (W kept as [out, in] under its key; no bias key, no bias). */
export function projectTokens(b: TemplateBuilder, x: Tokens, weightKey: string, biasKey: string, hint: string): Tokens {
  const w = b.tensor(weightKey, 2);
  if (!w) return x;
  const [out, features] = w.dims;
  const last = x.dims[x.dims.length - 1];
  if (features !== last) b.problems.push(`${weightKey} takes ${features} features but gets ${last}`);
  let y = b.g.op('MatMul', [x.name, transpose(b, b.param(weightKey, w), [1, 0], `${hint}.weight_t`)], {}, hint);
  if (b.has(biasKey)) {
    const bias = b.tensor(biasKey, 1);
    if (bias) y = b.g.op('Add', [y, b.param(biasKey, bias)], {}, `${hint}.bias`);
  }
  return { name: y, dims: [...x.dims.slice(0, -1), out] };
}

/** torch.nn.Linear on the last dimension of a channels-last tensor. */
export function tokensLinear(b: TemplateBuilder, x: Tokens, prefix: string): Tokens {
  return projectTokens(b, x, `${prefix}.weight`, `${prefix}.bias`, prefix);
}

/** a + b of two channels-last tensors of one shape (a residual connection). */
export function addTokens(b: TemplateBuilder, a: Tokens, c: Tokens, hint: string): Tokens {
  if (a.dims.join() !== c.dims.join()) b.problems.push(`${hint} adds a [${a.dims.join(', ')}] tensor to a [${c.dims.join(', ')}] one`);
  return { ...a, name: b.g.op('Add', [a.name, c.name], {}, hint) };
}

/** A state_dict key under a module ('' for the root). */
export function keyOf(m: ModuleNode, name: string): string {
  return m.path ? `${m.path}.${name}` : name;
}

/**
 * torchvision.ops.misc.Permute with the batch kept first: [0, 2, 3, 1] makes an NCHW map channels
 * last, [0, 3, 1, 2] makes it a map again (ConvNeXt's blocks, Swin).
 */
export function permute(b: TemplateBuilder, m: ModuleNode, x: Flow, dims: number[]): Flow {
  const hint = m.path || 'permute';
  if (dims.join() === '0,2,3,1' && isMap(x)) return { name: transpose(b, x.name, dims, hint), dims: [x.h, x.w, x.c] };
  if (dims.join() === '0,3,1,2' && isTokens(x) && x.dims.length === 3) {
    const [h, w, c] = x.dims;
    return { name: transpose(b, x.name, dims, hint), c, h, w } satisfies Act;
  }
  refuse(m, `permutes ${shapeText(x)} by [${dims.join(', ')}]; Backdoor Lens converts NCHW ↔ NHWC permutes only`);
}
