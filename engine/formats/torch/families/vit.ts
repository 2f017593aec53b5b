/**
 * torchvision's VisionTransformer (torchvision/models/vision_transformer.py) and the
 * torch.nn.MultiheadAttention its EncoderBlocks use. forward(): conv_proj (a patch conv, or a conv
 * stem), reshape to [N, D, n_h·n_w] and permute to tokens [N, L, D], the class token put first,
 * the Encoder (pos_embedding added, dropout, EncoderBlocks, ln), the class token's row x[:, 0],
 * heads. An EncoderBlock is x = dropout(attention(ln_1(input))) + input, then x + mlp(ln_2(x));
 * MLPBlock is a Sequential (Linear, GELU, Dropout, Linear, Dropout).
 */
import type { TemplateBuilder, Vec } from '../../templates/builder';
import { describe } from '../../pickle/values';
import { int, map, refuse, required, tokens, type Flow, type Tokens } from '../convert-helpers';
import { addTokens, keyOf, projectTokens, reshape, tokensLinear, transpose } from '../layers';
import type { ModuleNode } from '../modules';
import type { Converters, Run } from './types';

/**
 * nn.MultiheadAttention(x, x, x, need_weights=False) with batch_first, as torch computes it: one
 * in-projection split into q, k, v; per head softmax(q/√d_head · kᵀ) · v; heads joined; out_proj.
 */
function multiheadAttention(b: TemplateBuilder, m: ModuleNode, x: Flow): Flow {
  const input = tokens(m, x);
  if (input.dims.length !== 2) refuse(m, `attends over a [${input.dims.join(', ')}] tensor; it needs tokens [L, D]`);
  if (m.attrs.get('batch_first') !== true) refuse(m, 'is not batch_first; Backdoor Lens converts the batch-first attention of torchvision models');
  if (m.attrs.get('_qkv_same_embed_dim') === false) refuse(m, 'has separate key and value sizes (kdim, vdim), which Backdoor Lens does not convert');
  if (m.attrs.get('add_zero_attn') === true || b.has(`${m.path}.bias_k`)) refuse(m, 'adds a zero or bias key (add_zero_attn, add_bias_kv), which Backdoor Lens does not convert');
  const [l, d] = input.dims;
  const heads = int(m, 'num_heads');
  if (heads < 1 || d % heads) refuse(m, `has ${describe(m.attrs.get('num_heads') ?? null)} heads for ${d} features`);
  const size = d / heads;
  const p = m.path;
  const qkv = projectTokens(b, input, `${p}.in_proj_weight`, `${p}.in_proj_bias`, `${p}.in_proj`);
  if (qkv.dims[1] !== 3 * d) b.problems.push(`${p}.in_proj_weight gives ${qkv.dims[1]} features, not 3 × ${d}`);
  const [q, k, v] = b.g.node('Split', [qkv.name, b.g.constantInt64([d, d, d], `${p}.qkv_sizes`)], { axis: 2 }, { name: `${p}.qkv`, outputs: 3 });
  // [N, L, D] → [N, heads, L, d_head]
  const perHead = (t: string, hint: string) => transpose(b, reshape(b, t, [0, l, heads, size], `${p}.${hint}.split_heads`), [0, 2, 1, 3], `${p}.${hint}.heads`);
  const scaled = b.g.op('Div', [perHead(q, 'q'), b.g.constantFloat([Math.sqrt(size)], [], `${p}.sqrt_head`)], {}, `${p}.q.scaled`);
  const scores = b.g.op('MatMul', [scaled, transpose(b, perHead(k, 'k'), [0, 1, 3, 2], `${p}.k.t`)], {}, `${p}.scores`);
  const weights = b.g.op('Softmax', [scores], { axis: -1 }, `${p}.softmax`);
  const attended = b.g.op('MatMul', [weights, perHead(v, 'v')], {}, `${p}.attend`);
  const joined = reshape(b, transpose(b, attended, [0, 2, 1, 3], `${p}.join`), [0, l, d], `${p}.joined`);
  return tokensLinear(b, { name: joined, dims: [l, d] }, `${p}.out_proj`);
}

function encoderBlock(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  const input = tokens(m, x);
  const step = (names: string[], y: Flow) => tokens(m, names.reduce((z, n) => run(required(m, n), z), y));
  const attended = addTokens(b, step(['ln_1', 'self_attention', 'dropout'], input), input, `${m.path}.add_attention`);
  return addTokens(b, attended, step(['ln_2', 'mlp'], attended), `${m.path}.add_mlp`);
}

/** input + pos_embedding ([1, L, D]: the sequence length fixes the image size), dropout, layers, ln. */
function encoder(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  const input = tokens(m, x);
  const key = keyOf(m, 'pos_embedding');
  const pos = b.tensor(key, 3);
  if (!pos) return input;
  if (pos.dims.join() !== [1, ...input.dims].join()) {
    b.problems.push(`${key} has shape [${pos.dims.join(', ')}] but the tokens are [${input.dims.join(', ')}]: the input size is wrong for these weights`);
  }
  const embedded: Tokens = { ...input, name: b.g.op('Add', [input.name, b.param(key, pos)], {}, key) };
  return ['dropout', 'layers', 'ln'].reduce<Flow>((y, n) => run(required(m, n), y), embedded);
}

function visionTransformer(b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run): Flow {
  const image = map(m, x);
  const side = int(m, 'image_size');
  // _process_input asserts the size; here a wrong one is a mismatch, so the size search goes on.
  if (image.h !== side || image.w !== side) b.problems.push(`the ViT takes ${side}×${side} images (image_size), not ${image.h}×${image.w}`);
  b.sizeDependent = true;
  const patches = map(m, run(required(m, 'conv_proj'), image));
  const d = patches.c, l = patches.h * patches.w;
  const sequence = transpose(b, reshape(b, patches.name, [0, d, l], 'process_input.reshape'), [0, 2, 1], 'process_input.permute');
  // torch.cat([class_token.expand(n, -1, -1), x], dim=1), written without the batch size: the
  // tokens padded with a zero row in front, plus the class token padded with L zero rows after it.
  const key = keyOf(m, 'class_token');
  const token = b.tensor(key, 3);
  if (!token) return image;
  if (token.dims.join() !== `1,1,${d}`) b.problems.push(`${key} has shape [${token.dims.join(', ')}], not [1, 1, ${d}]`);
  const padded = b.g.op('Pad', [sequence, b.g.constantInt64([0, 1, 0, 0, 0, 0], 'class_token.room')], { mode: 'constant' }, 'class_token.room');
  const row = b.g.op('Pad', [b.param(key, token), b.g.constantInt64([0, 0, 0, 0, l, 0], 'class_token.rows')], { mode: 'constant' }, 'class_token.rows');
  const withToken: Tokens = { name: b.g.op('Add', [padded, row], {}, 'class_token.cat'), dims: [l + 1, d] };
  const encoded = tokens(m, run(required(m, 'encoder'), withToken));
  const first = b.g.initializer('class_token.index', { dtype: 'int64', dims: [], data: BigInt64Array.of(0n) });
  const classRow: Vec = { name: b.g.op('Gather', [encoded.name, first], { axis: 1 }, 'class_token.take'), n: encoded.dims[1] };
  return run(required(m, 'heads'), classRow);
}

export const vitConverters: Converters = {
  'torchvision.models.vision_transformer.VisionTransformer': visionTransformer,
  'torchvision.models.vision_transformer.Encoder': encoder,
  'torchvision.models.vision_transformer.EncoderBlock': encoderBlock,
  'torch.nn.modules.activation.MultiheadAttention': multiheadAttention,
};
