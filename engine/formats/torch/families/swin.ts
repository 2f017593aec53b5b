/**
 * torchvision's Swin Transformer, V1 (torchvision/models/swin_transformer.py). The network runs
 * channels last, [N, H, W, C]: features (a patch conv, Permute, LayerNorm; stages of
 * SwinTransformerBlocks; PatchMerging between them), norm, permute back, avgpool, flatten, head.
 *
 * A block is x + attn(norm1(x)), then x + mlp(norm2(x)) (StochasticDepth is the identity in eval).
 * ShiftedWindowAttention is shifted_window_attention() with the sizes of this input, which are all
 * known when the graph is built: the pads to whole windows, the shift (dropped along a side whose
 * padded length one window covers), the roll (Slice + Concat), the window partition (Reshape +
 * Transpose, the batch kept as its own axis), q·kᵀ scaled by head_dim^−0.5, the relative position
 * bias (the table gathered by the module's own relative_position_index buffer), the shifted
 * windows' −100 mask (a constant), softmax, ·v, proj, the windows put back, the roll undone, the
 * padding cropped. PatchMerging pads H and W to even, joins each 2×2 neighbourhood into 4·C
 * channels in torch.cat([x0, x1, x2, x3]) order (a Reshape + Transpose), then norm and reduction.
 *
 * Swin V2 (swin_v2_t…b) changes three things, each as torchvision writes it: blocks normalise
 * after attention and MLP (x + norm1(attn(x))), PatchMergingV2 normalises after its reduction, and
 * ShiftedWindowAttentionV2 uses cosine attention (F.normalize of q and k, times
 * exp(min(logit_scale, log 100))), a position bias 16·sigmoid(cpb_mlp(relative_coords_table))
 * gathered by the same index, and a qkv bias whose key third is zeroed at every call.
 */
import type { TemplateBuilder } from '../../templates/builder';
import type { Tensor } from '../../../tensor';
import { describe, sequenceItems } from '../../pickle/values';
import { int, refuse, required, tokens, type Flow, type Tokens } from '../convert-helpers';
import { addTokens, projectTokens, reshape, tokensLinear, transpose } from '../layers';
import type { ModuleNode } from '../modules';
import type { Converters, Run } from './types';

function pairOf(m: ModuleNode, name: string): [number, number] {
  const v = m.attrs.get(name);
  const items = v === undefined ? undefined : sequenceItems(v);
  if (!items || items.length !== 2) refuse(m, `has ${name} ${describe(v ?? null)}, not a list of two sizes`);
  return [int(m, name, items[0]), int(m, name, items[1])];
}

/** x[start:end] along an axis (ends past the size clip, as in Python). */
function slice(b: TemplateBuilder, x: string, axis: number, start: number, end: number, hint: string): string {
  return b.g.op('Slice', [x, b.g.constantInt64([start], `${hint}.start`), b.g.constantInt64([end], `${hint}.end`), b.g.constantInt64([axis], `${hint}.axis`)], {}, hint);
}

/** torch.roll(x, shift, dim): out[i] = x[(i − shift) mod n], as two Slices and a Concat. */
function roll(b: TemplateBuilder, x: string, axis: number, n: number, shift: number, hint: string): string {
  const s = ((shift % n) + n) % n;
  if (s === 0) return x;
  return b.g.op('Concat', [slice(b, x, axis, n - s, n, `${hint}.tail`), slice(b, x, axis, 0, n - s, `${hint}.head`)], { axis }, hint);
}

/** define_relative_position_index(): the table row of each (query, key) pair of a window. */
function relativePositionIndex(wh: number, ww: number): number[] {
  const t = wh * ww;
  const out: number[] = [];
  for (let i = 0; i < t; i++) {
    for (let j = 0; j < t; j++) {
      const dh = Math.floor(i / ww) - Math.floor(j / ww) + wh - 1;
      const dw = (i % ww) - (j % ww) + ww - 1;
      out.push(dh * (2 * ww - 1) + dw);
    }
  }
  return out;
}

/**
 * The shifted windows' mask [nW, T, T], as torchvision builds it: regions numbered by assigning
 * the slices (0, −w), (−w, −s), (−s, None) of each side in turn (with Python's slice rules, so a
 * zero shift makes the last slice the whole side), then 0 within a region and −100 across.
 */
function shiftMask(ph: number, pw: number, wh: number, ww: number, sh: number, sw: number): Float32Array {
  const at = (v: number | null, n: number) => (v === null ? n : v < 0 ? Math.max(0, n + v) : Math.min(v, n));
  const slices = (w: number, s: number): [number, number | null][] => [[0, -w], [-w, -s], [-s, null]];
  const labels = new Int32Array(ph * pw);
  let count = 0;
  for (const [h0, h1] of slices(wh, sh)) {
    for (const [w0, w1] of slices(ww, sw)) {
      for (let y = at(h0, ph); y < at(h1, ph); y++) for (let x = at(w0, pw); x < at(w1, pw); x++) labels[y * pw + x] = count;
      count++;
    }
  }
  const nh = ph / wh, nw = pw / ww, t = wh * ww;
  const mask = new Float32Array(nh * nw * t * t);
  for (let a = 0; a < nh; a++) {
    for (let c = 0; c < nw; c++) {
      const window = Array.from({ length: t }, (_, k) => labels[(a * wh + Math.floor(k / ww)) * pw + c * ww + (k % ww)]);
      const base = (a * nw + c) * t * t;
      for (let i = 0; i < t; i++) for (let j = 0; j < t; j++) mask[base + i * t + j] = window[i] === window[j] ? 0 : -100;
    }
  }
  return mask;
}

/**
 * The relative position bias [heads, T, T]: rows of a [(2·wh − 1)(2·ww − 1), heads] table (V1's
 * parameter, V2's cpb_mlp output) gathered by the module's own relative_position_index buffer.
 */
function attentionBias(b: TemplateBuilder, m: ModuleNode, heads: number, wh: number, ww: number, table: { name: string; rows: number; key: string }): string | undefined {
  const p = m.path, t = wh * ww;
  const indexKey = `${p}.relative_position_index`;
  const stored = b.tensor(indexKey, 1);
  if (!stored) return undefined;
  if (table.rows !== (2 * wh - 1) * (2 * ww - 1)) b.problems.push(`${table.key} has ${table.rows} rows, not ${(2 * wh - 1) * (2 * ww - 1)} for ${wh}×${ww} windows`);
  if (stored.dims[0] !== t * t) b.problems.push(`${indexKey} holds ${stored.dims[0]} indices, not ${t * t} for ${wh}×${ww} windows`);
  // torch gathers by the buffer the file holds; a shapes-only pass (the size search) has no values
  // yet, so a bad value is refused outright (no input size fixes it), not reported as a mismatch.
  const index = storedIndex(stored) ?? relativePositionIndex(wh, ww);
  if (index.some((i) => !Number.isInteger(i) || i < 0 || i >= table.rows)) refuse(m, `has a relative_position_index outside its bias table`);
  const indexName = b.g.initializer(`${indexKey}.values`, { dtype: 'int64', dims: [t * t], data: BigInt64Array.from(index.map((i) => BigInt(Math.max(0, Math.min(i, table.rows - 1))))) });
  const gathered = b.g.op('Gather', [table.name, indexName], { axis: 0 }, `${p}.relative_position_bias`);
  // [T·T, heads] → [heads, T, T]
  return transpose(b, reshape(b, gathered, [t, t, heads], `${p}.relative_position_bias.view`), [2, 0, 1], `${p}.relative_position_bias.heads`);
}

/** V1: the relative_position_bias_table parameter. */
function biasTableV1(b: TemplateBuilder, m: ModuleNode, heads: number): { name: string; rows: number; key: string } | undefined {
  const key = `${m.path}.relative_position_bias_table`;
  const table = b.tensor(key, 2);
  if (!table) return undefined;
  if (table.dims[1] !== heads) b.problems.push(`${key} has ${table.dims[1]} columns, not one per head (${heads})`);
  return { name: b.param(key, table), rows: table.dims[0], key };
}

/** V2: cpb_mlp (Linear, ReLU, Linear) on the relative_coords_table buffer [1, 2wh − 1, 2ww − 1, 2], viewed as [rows, heads]. */
function biasTableV2(b: TemplateBuilder, m: ModuleNode, heads: number, run: Run): { name: string; rows: number; key: string } | undefined {
  const key = `${m.path}.relative_coords_table`;
  const coords = b.tensor(key, 4);
  if (!coords) return undefined;
  const [, a, c] = coords.dims;
  const out = tokens(m, run(required(m, 'cpb_mlp'), { name: b.param(key, coords), dims: coords.dims.slice(1) }));
  if (out.dims[2] !== heads) b.problems.push(`${m.path}.cpb_mlp gives ${out.dims[2]} values per position, not one per head (${heads})`);
  return { name: reshape(b, out.name, [a * c, heads], `${m.path}.cpb_table`), rows: a * c, key: `${m.path}.cpb_mlp` };
}

function storedIndex(t: Tensor): number[] | undefined {
  if (t.data.length !== t.dims[0]) return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** F.normalize(x, dim=−1): x / max(‖x‖₂, 1e-12). */
function normalize(b: TemplateBuilder, x: string, hint: string): string {
  const sum = b.g.op('ReduceSum', [b.g.op('Mul', [x, x], {}, `${hint}.square`), b.g.constantInt64([-1], `${hint}.axis`)], { keepdims: 1 }, `${hint}.sum`);
  const norm = b.g.op('Max', [b.g.op('Sqrt', [sum], {}, `${hint}.norm`), b.g.constantFloat([1e-12], [], `${hint}.eps`)], {}, `${hint}.clamp`);
  return b.g.op('Div', [x, norm], {}, hint);
}

/** exp(min(logit_scale, log 100)), logit_scale [heads, 1, 1]. */
function logitScale(b: TemplateBuilder, m: ModuleNode, heads: number): string {
  const key = `${m.path}.logit_scale`;
  const t = b.tensor(key, 3);
  if (!t) return b.g.constantFloat([1], [], `${key}.missing`);
  if (t.dims.join() !== `${heads},1,1`) b.problems.push(`${key} has shape [${t.dims.join(', ')}], not [${heads}, 1, 1]`);
  const clamped = b.g.op('Min', [b.param(key, t), b.g.constantFloat([Math.log(100)], [], `${key}.max`)], {}, `${key}.clamp`);
  return b.g.op('Exp', [clamped], {}, `${key}.exp`);
}

/** V2's qkv: F.linear with the bias's key third zeroed (a clone, at every call), so only q and v are shifted. */
function qkvV2(b: TemplateBuilder, m: ModuleNode, x: string, windows: number, t: number, c: number): Tokens {
  const p = m.path;
  // The weight alone (no bias key), then the masked bias.
  const projected = projectTokens(b, { name: x, dims: [windows, t, c] }, `${p}.qkv.weight`, '', `${p}.qkv`);
  if (!b.has(`${p}.qkv.bias`)) return projected;
  const bias = b.tensor(`${p}.qkv.bias`, 1);
  if (!bias) return projected;
  const n = bias.dims[0], third = Math.floor(n / 3);
  const keep = Float32Array.from({ length: n }, (_, i) => (i >= third && i < 2 * third ? 0 : 1));
  const masked = b.g.op('Mul', [b.param(`${p}.qkv.bias`, bias), b.g.constantFloat(keep, [n], `${p}.qkv.bias_mask`)], {}, `${p}.qkv.bias_masked`);
  return { ...projected, name: b.g.op('Add', [projected.name, masked], {}, `${p}.qkv.bias`) };
}

function shiftedWindowAttention(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run, v2: boolean): Flow {
  const input = tokens(m, x);
  if (input.dims.length !== 3) refuse(m, `attends over a [${input.dims.join(', ')}] tensor; it needs a channels-last [H, W, C] map`);
  const [h, w, c] = input.dims;
  const [wh, ww] = pairOf(m, 'window_size');
  const shift = pairOf(m, 'shift_size');
  const heads = int(m, 'num_heads');
  if (wh < 1 || ww < 1 || shift.some((s) => s < 0)) refuse(m, `has window_size [${wh}, ${ww}] and shift_size [${shift.join(', ')}]; windows must be at least 1 and shifts at least 0`);
  if (heads < 1 || c % heads) refuse(m, `has ${heads} heads for ${c} channels`);
  const p = m.path, size = c / heads;
  const padB = (wh - (h % wh)) % wh, padR = (ww - (w % ww)) % ww;
  const ph = h + padB, pw = w + padR;
  let y = input.name;
  if (padB || padR) y = b.g.op('Pad', [y, b.g.constantInt64([0, 0, 0, 0, 0, padB, padR, 0], `${p}.pad`)], { mode: 'constant' }, `${p}.pad`);
  const [sh, sw] = [wh >= ph ? 0 : shift[0], ww >= pw ? 0 : shift[1]];
  const shifted = sh + sw > 0;
  if (shifted) y = roll(b, roll(b, y, 1, ph, -sh, `${p}.roll_h`), 2, pw, -sw, `${p}.roll_w`);
  const nh = ph / wh, nw = pw / ww, windows = nh * nw, t = wh * ww;
  // [N, pH, pW, C] → [N, nW, T, C]: windows row by row, positions row by row within each.
  const partitioned = reshape(b, transpose(b, reshape(b, y, [0, nh, wh, nw, ww, c], `${p}.windows.view`), [0, 1, 3, 2, 4, 5], `${p}.windows.order`), [0, windows, t, c], `${p}.windows`);
  const qkv = v2 ? qkvV2(b, m, partitioned, windows, t, c) : projectTokens(b, { name: partitioned, dims: [windows, t, c] }, `${p}.qkv.weight`, `${p}.qkv.bias`, `${p}.qkv`);
  if (qkv.dims[2] !== 3 * c) b.problems.push(`${p}.qkv.weight gives ${qkv.dims[2]} features, not 3 × ${c}`);
  const [q, k, v] = b.g.node('Split', [qkv.name, b.g.constantInt64([c, c, c], `${p}.qkv_sizes`)], { axis: 3 }, { name: `${p}.qkv.split`, outputs: 3 });
  // [N, nW, T, C] → [N, nW, heads, T, head_dim]
  const perHead = (s: string, hint: string) => transpose(b, reshape(b, s, [0, windows, t, heads, size], `${p}.${hint}.split_heads`), [0, 1, 3, 2, 4], `${p}.${hint}.heads`);
  let scores: string;
  if (v2) {
    // Cosine attention: F.normalize(q) @ F.normalize(k)ᵀ · exp(clamp(logit_scale, max=log 100)).
    const cosine = b.g.op('MatMul', [normalize(b, perHead(q, 'q'), `${p}.q.normalize`), transpose(b, normalize(b, perHead(k, 'k'), `${p}.k.normalize`), [0, 1, 2, 4, 3], `${p}.k.t`)], {}, `${p}.scores`);
    scores = b.g.op('Mul', [cosine, logitScale(b, m, heads)], {}, `${p}.scores.scaled`);
  } else {
    const scaled = b.g.op('Mul', [perHead(q, 'q'), b.g.constantFloat([size ** -0.5], [], `${p}.q.scale`)], {}, `${p}.q.scaled`);
    scores = b.g.op('MatMul', [scaled, transpose(b, perHead(k, 'k'), [0, 1, 2, 4, 3], `${p}.k.t`)], {}, `${p}.scores`);
  }
  const table = v2 ? biasTableV2(b, m, heads, run) : biasTableV1(b, m, heads);
  let bias = table && attentionBias(b, m, heads, wh, ww, table);
  if (bias && v2) bias = b.g.op('Mul', [b.g.op('Sigmoid', [bias], {}, `${p}.relative_position_bias.sigmoid`), b.g.constantFloat([16], [], `${p}.relative_position_bias.sixteen`)], {}, `${p}.relative_position_bias.scaled`);
  if (bias) scores = b.g.op('Add', [scores, bias], {}, `${p}.scores.position`);
  if (shifted) scores = b.g.op('Add', [scores, b.g.constantFloat(shiftMask(ph, pw, wh, ww, sh, sw), [windows, 1, t, t], `${p}.shift_mask`)], {}, `${p}.scores.masked`);
  const attended = b.g.op('MatMul', [b.g.op('Softmax', [scores], { axis: -1 }, `${p}.softmax`), perHead(v, 'v')], {}, `${p}.attend`);
  const joined = reshape(b, transpose(b, attended, [0, 1, 3, 2, 4], `${p}.join`), [0, windows, t, c], `${p}.joined`);
  const projected = tokensLinear(b, { name: joined, dims: [windows, t, c] }, `${p}.proj`);
  // [N, nW, T, C] → [N, pH, pW, C]
  let out = reshape(b, transpose(b, reshape(b, projected.name, [0, nh, nw, wh, ww, c], `${p}.unwindow.view`), [0, 1, 3, 2, 4, 5], `${p}.unwindow.order`), [0, ph, pw, c], `${p}.unwindow`);
  if (shifted) out = roll(b, roll(b, out, 1, ph, sh, `${p}.unroll_h`), 2, pw, sw, `${p}.unroll_w`);
  if (padB) out = slice(b, out, 1, 0, h, `${p}.crop_h`);
  if (padR) out = slice(b, out, 2, 0, w, `${p}.crop_w`);
  return { name: out, dims: [h, w, c] };
}

/** V1: x + attn(norm1(x)), x + mlp(norm2(x)); V2 normalises after: x + norm1(attn(x)), x + norm2(mlp(x)). */
function swinBlock(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run, v2: boolean): Flow {
  const input = tokens(m, x);
  const branch = (names: string[], y: Tokens) => tokens(m, names.reduce<Flow>((z, n) => run(required(m, n), z), y));
  const attended = addTokens(b, input, branch(v2 ? ['attn', 'norm1', 'stochastic_depth'] : ['norm1', 'attn', 'stochastic_depth'], input), `${m.path}.add_attention`);
  return addTokens(b, attended, branch(v2 ? ['mlp', 'norm2', 'stochastic_depth'] : ['norm2', 'mlp', 'stochastic_depth'], attended), `${m.path}.add_mlp`);
}

/** _patch_merging_pad, then norm(4C) and reduction(4C → 2C); V2 reduces first, then norms (2C). */
function patchMerging(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run, v2: boolean): Flow {
  const input = tokens(m, x);
  if (input.dims.length !== 3) refuse(m, `merges a [${input.dims.join(', ')}] tensor; it needs a channels-last [H, W, C] map`);
  const [h, w, c] = input.dims;
  const p = m.path || 'merge';
  let y = input.name;
  if (h % 2 || w % 2) y = b.g.op('Pad', [y, b.g.constantInt64([0, 0, 0, 0, 0, h % 2, w % 2, 0], `${p}.pad`)], { mode: 'constant' }, `${p}.pad`);
  const h2 = (h + (h % 2)) / 2, w2 = (w + (w % 2)) / 2;
  // [N, H/2, 2, W/2, 2, C] → [N, H/2, W/2, (w parity, h parity), C]: x0 (0, 0), x1 (h 1), x2 (w 1), x3 (1, 1).
  const grouped = transpose(b, reshape(b, y, [0, h2, 2, w2, 2, c], `${p}.pairs`), [0, 1, 3, 4, 2, 5], `${p}.order`);
  const merged: Tokens = { name: reshape(b, grouped, [0, h2, w2, 4 * c], `${p}.cat`), dims: [h2, w2, 4 * c] };
  return (v2 ? ['reduction', 'norm'] : ['norm', 'reduction']).reduce<Flow>((z, n) => run(required(m, n), z), merged);
}

function swinTransformer(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  return ['features', 'norm', 'permute', 'avgpool', 'flatten', 'head'].reduce((y, n) => run(required(m, n), y), x);
}

const SWIN = 'torchvision.models.swin_transformer';

export const swinConverters: Converters = {
  [`${SWIN}.SwinTransformer`]: swinTransformer,
  [`${SWIN}.SwinTransformerBlock`]: (b, m, x, run) => swinBlock(b, m, x, run, false),
  [`${SWIN}.SwinTransformerBlockV2`]: (b, m, x, run) => swinBlock(b, m, x, run, true),
  [`${SWIN}.ShiftedWindowAttention`]: (b, m, x, run) => shiftedWindowAttention(b, m, x, run, false),
  [`${SWIN}.ShiftedWindowAttentionV2`]: (b, m, x, run) => shiftedWindowAttention(b, m, x, run, true),
  [`${SWIN}.PatchMerging`]: (b, m, x, run) => patchMerging(b, m, x, run, false),
  [`${SWIN}.PatchMergingV2`]: (b, m, x, run) => patchMerging(b, m, x, run, true),
};
