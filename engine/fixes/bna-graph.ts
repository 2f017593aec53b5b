/**
 * The ONNX graphs BNA writes: the corrected network g_t (every BN of f with its normalisation
 * replaced by the fitted clamp((z − μ)/σ, υ, ω), γ and β kept), and the combined model holding
 * f, one g_t per detected target and the inference rule:
 *   if f(x) = t ∈ T and g_t(x) ≠ t: output g_t(x) and flag x; otherwise output f(x).
 * No initializer of f changes; g_t shares f's weights by name.
 */
import { bnLayers } from '../graph/patterns';
import { inferShapes } from '../graph/shapes';
import type { OnnxModel } from '../graph/model';
import type { AttributeProto, NodeProto } from '../graph/proto';
import { toAttribute, valueInfo, type AttrValue } from '../graph/builder';
import { tensorToProto } from '../graph/tensor-proto';
import type { Tensor } from '../tensor';
import type { ChannelTransform } from './bna-fit';
import type { Dataset } from '../data/types';
import { imageInputOf } from '../evaluate';
import { BackdoorLensError } from '../errors';
import type { Runtime } from '../runtime/session';

/** The fitted transforms of one BN layer, in normalised units (see bna-fit.ts). */
export interface LayerCorrection {
  /** The BN node's name in f (ModelProto node name). */
  bn: string;
  /**
   * One transform per channel (`spatial` empty), or one per unit of the feature map (channel and
   * position, `spatial` = [H, W], transforms in C·H·W order).
   */
  spatial: number[];
  transforms: ChannelTransform[];
}

export interface TargetCorrection {
  target: number;
  layers: LayerCorrection[];
}

export const TRIGGER_OUTPUT = 'trigger_detected';

const f32 = (dims: number[], values: ArrayLike<number>): Tensor => ({ dtype: 'float32', dims, data: Float32Array.from(values) });

function node(op: string, inputs: string[], outputs: string[], name: string, attrs: Record<string, AttrValue> = {}): NodeProto {
  const attribute: AttributeProto[] = Object.entries(attrs).map(([k, v]) => toAttribute(k, v));
  return { op_type: op, input: inputs, output: outputs, name, attribute };
}

/**
 * g: a copy of the model with the listed BN layers replaced by their corrected normalisation.
 * Layers not listed keep BN as it is. Input and output names stay those of the model.
 */
export function correctedNetwork(model: OnnxModel, layers: readonly LayerCorrection[], source = `${model.source} (BNA-corrected)`): OnnxModel {
  const copy = model.clone(source);
  const byName = new Map(bnLayers(copy).map((l) => [l.node.name ?? '', l]));
  const { shapes } = inferShapes(copy);
  for (const layer of layers) {
    const bn = byName.get(layer.bn);
    if (!bn) throw new Error(`${model.source}: no BatchNormalization node named '${layer.bn}'`);
    const C = bn.channels;
    const units = layer.spatial.reduce((a, b) => a * b, 1);
    if (layer.transforms.length !== C * units) throw new Error(`${layer.bn}: ${layer.transforms.length} transforms for ${C} channels × ${units} positions`);
    const rank = shapes.get(bn.input)?.length ?? 4;
    const channelDims = [1, C, ...new Array<number>(Math.max(0, rank - 2)).fill(1)];
    const dims = layer.spatial.length ? [1, C, ...layer.spatial] : channelDims;
    // Aliased parameters were given their own copies at load (unshareInitializerAliases); one computed by the graph cannot be corrected.
    const stored = (name: string, what: string) => {
      const t = copy.initializer(name);
      if (!t) throw new BackdoorLensError('unsupported-model', `BatchNormalization '${layer.bn}' reads its ${what} '${name}' from a computed tensor, not a stored one; BNA corrects stored BN statistics only`, { file: model.source });
      return t.data as Float32Array;
    };
    const rm = stored(bn.mean, 'running mean'), rv = stored(bn.variance, 'running variance');
    const gamma = stored(bn.scale, 'scale'), beta = stored(bn.bias, 'bias');
    const n = C * units;
    const mu = new Float32Array(n), inv = new Float32Array(n), lo = new Float32Array(n), hi = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      const c = Math.floor(j / units);
      const sd = Math.sqrt(rv[c] + bn.epsilon), t = layer.transforms[j];
      mu[j] = rm[c] + t.shift * sd;
      inv[j] = 1 / (t.scale * sd);
      lo[j] = t.lower;
      hi[j] = t.upper;
    }
    const p = `${layer.bn}/bna`;
    const names = { mu: `${p}/mu`, inv: `${p}/inv_sigma`, lo: `${p}/lower`, hi: `${p}/upper`, g: `${p}/gamma`, b: `${p}/beta` };
    copy.graph.initializer.push(
      tensorToProto(names.mu, f32(dims, mu)), tensorToProto(names.inv, f32(dims, inv)),
      tensorToProto(names.lo, f32(dims, lo)), tensorToProto(names.hi, f32(dims, hi)),
      tensorToProto(names.g, f32(channelDims, gamma)), tensorToProto(names.b, f32(channelDims, beta)),
    );
    const t = (s: string) => `${p}/${s}`;
    const replacement = [
      node('Sub', [bn.input, names.mu], [t('centred')], t('Sub')),
      node('Mul', [t('centred'), names.inv], [t('normalised')], t('Mul')),
      node('Max', [t('normalised'), names.lo], [t('floored')], t('Max')),
      node('Min', [t('floored'), names.hi], [t('clipped')], t('Min')),
      node('Mul', [t('clipped'), names.g], [t('scaled')], t('Scale')),
      node('Add', [t('scaled'), names.b], [bn.output], t('Shift')),
    ];
    copy.nodes.splice(copy.nodes.indexOf(bn.node), 1, ...replacement);
    copy.invalidate();
  }
  // BN's own statistics may now be unused (onnxruntime warns about unused initializers).
  const used = new Set(copy.nodes.flatMap((n) => n.input));
  const unused = new Set(copy.graph.initializer.map((t) => t.name ?? '').filter((name) => !used.has(name)));
  copy.graph.initializer = copy.graph.initializer.filter((t) => !unused.has(t.name ?? ''));
  copy.graph.input = copy.graph.input.filter((i) => !unused.has(i.name));
  copy.invalidate();
  return copy;
}

/** Renames every tensor and node of g except the graph inputs and the initializers f already has. */
function prefixed(g: OnnxModel, f: OnnxModel, prefix: string): { nodes: NodeProto[]; initializers: OnnxModel['graph']['initializer']; rename: (s: string) => string } {
  const keep = new Set([...g.inputs().map((i) => i.name), ...f.initializerNames().filter((n) => g.hasInitializer(n))]);
  const rename = (s: string) => (s === '' || keep.has(s) ? s : `${prefix}${s}`);
  const nodes = g.nodes.map((n) => ({ ...n, name: `${prefix}${n.name ?? n.op_type}`, input: n.input.map(rename), output: n.output.map(rename) }));
  const initializers = g.graph.initializer.filter((t) => !keep.has(t.name ?? '')).map((t) => ({ ...t, name: rename(t.name ?? '') }));
  return { nodes, initializers, rename };
}

/**
 * f + g_t for every target + the inference rule. The first output of f (the logits) keeps its
 * name and shape and carries the rule's decision; `trigger_detected` (bool [N]) is added.
 * With no targets the logits are f's and trigger_detected is always false.
 */
export function bnaModel(f: OnnxModel, corrections: readonly TargetCorrection[]): OnnxModel {
  const out = f.clone(`${f.source} (BNA)`);
  const logits = f.outputs()[0];
  const opset = f.opsetVersion() ?? 13;
  if (opset < 9) throw new Error(`${f.source}: opset ${opset} is older than 9; the BNA inference rule needs Where (opset 9)`);
  const fLogits = `${logits.name}/f`;
  for (const n of out.nodes) {
    n.input = n.input.map((i) => (i === logits.name ? fLogits : i));
    n.output = n.output.map((o) => (o === logits.name ? fLogits : o));
  }
  const extra: NodeProto[] = [];
  const r = 'bna_rule';
  const int64 = (name: string, values: number[], dims = [values.length]) =>
    out.graph.initializer.push(tensorToProto(name, { dtype: 'int64', dims, data: BigInt64Array.from(values.map(BigInt)) }));
  extra.push(node('ArgMax', [fLogits], [`${r}/f_class`], `${r}/ArgMax_f`, { axis: 1, keepdims: 0 }));
  int64(`${r}/column`, [-1, 1]);
  let current = fLogits;
  const flags: string[] = [];
  for (const { target, layers } of corrections) {
    const g = correctedNetwork(f, layers);
    const { nodes, initializers, rename } = prefixed(g, f, `g${target}/`);
    out.nodes.push(...nodes);
    out.graph.initializer.push(...initializers);
    const gLogits = rename(logits.name);
    const p = `${r}/t${target}`;
    int64(`${p}/target`, [target], []);
    extra.push(
      node('ArgMax', [gLogits], [`${p}/g_class`], `${p}/ArgMax_g`, { axis: 1, keepdims: 0 }),
      node('Equal', [`${r}/f_class`, `${p}/target`], [`${p}/f_is_t`], `${p}/Equal_f`),
      node('Equal', [`${p}/g_class`, `${p}/target`], [`${p}/g_is_t`], `${p}/Equal_g`),
      node('Not', [`${p}/g_is_t`], [`${p}/g_not_t`], `${p}/Not`),
      node('And', [`${p}/f_is_t`, `${p}/g_not_t`], [`${p}/flag`], `${p}/And`),
      node('Reshape', [`${p}/flag`, `${r}/column`], [`${p}/flag_column`], `${p}/Reshape`),
      node('Where', [`${p}/flag_column`, gLogits, current], [`${p}/logits`], `${p}/Where`),
    );
    current = `${p}/logits`;
    flags.push(`${p}/flag`);
  }
  if (flags.length === 0) {
    int64(`${r}/never`, [-1], []);
    extra.push(node('Equal', [`${r}/f_class`, `${r}/never`], [TRIGGER_OUTPUT], `${r}/Never`));
  } else {
    let any = flags[0];
    for (let i = 1; i < flags.length; i++) {
      const o = i === flags.length - 1 ? TRIGGER_OUTPUT : `${r}/any_${i}`;
      extra.push(node('Or', [any, flags[i]], [o], `${r}/Or_${i}`));
      any = o;
    }
    if (flags.length === 1) extra.push(node('Identity', [any], [TRIGGER_OUTPUT], `${r}/Flag`));
  }
  extra.push(node('Identity', [current], [logits.name], `${r}/Logits`));
  out.nodes.push(...extra);
  out.graph.output.push(valueInfo(TRIGGER_OUTPUT, 'bool', [logits.dims[0] ?? 'N']));
  out.invalidate();
  return out;
}

/** The trigger_detected flags of a BNA model on a data set; undefined for a model without that output. */
export async function triggerFlags(model: OnnxModel, data: Dataset, runtime: Runtime, batchSize = 128): Promise<Uint8Array | undefined> {
  if (!model.outputs().some((o) => o.name === TRIGGER_OUTPUT)) return undefined;
  const session = await runtime.session(model);
  const flags = new Uint8Array(data.n);
  await session.runBatched({ name: imageInputOf(model).name, data: data.x, dims: data.dims }, batchSize, (out, start) => {
    flags.set(out[TRIGGER_OUTPUT].data as Uint8Array, start);
  }, { fetches: [TRIGGER_OUTPUT] });
  return flags;
}

/** The parts of a model bnaModel wrote: its corrected targets and where each g_t's logits are. */
export interface BnaStructure {
  targets: number[];
  /** Target → g_t's logits tensor inside the combined model. */
  correctedLogits: Map<number, string>;
}

/** Recognises a BNA model by its rule (one Where per corrected target) and its trigger_detected output. */
export function bnaStructure(model: OnnxModel): BnaStructure | undefined {
  if (!model.outputs().some((o) => o.name === TRIGGER_OUTPUT)) return undefined;
  const correctedLogits = new Map<number, string>();
  for (const n of model.nodes) {
    const m = /^bna_rule\/t(\d+)\/Where$/.exec(n.name ?? '');
    if (m && n.op_type === 'Where' && n.input.length === 3) correctedLogits.set(Number(m[1]), n.input[1]);
  }
  if (correctedLogits.size === 0) return undefined;
  return { targets: [...correctedLogits.keys()].sort((a, b) => a - b), correctedLogits };
}

/**
 * One network out of a combined model: the nodes `tensor` depends on, with `tensor` renamed to
 * the model's first output (so the result has the original interface: one input, the logits).
 */
export function networkOf(model: OnnxModel, tensor: string, source: string): OnnxModel {
  const copy = model.clone(source);
  const out = model.outputs()[0];
  const need = new Set([tensor]);
  const kept: NodeProto[] = [];
  for (let i = copy.nodes.length - 1; i >= 0; i--) {
    const n = copy.nodes[i];
    if (!n.output.some((o) => need.has(o))) continue;
    kept.unshift(n);
    for (const x of n.input) if (x) need.add(x);
  }
  copy.graph.node = [...kept, node('Identity', [tensor], [out.name], 'bna_judged/Logits')];
  copy.graph.output = copy.graph.output.filter((o) => o.name === out.name);
  copy.graph.initializer = copy.graph.initializer.filter((t) => need.has(t.name ?? ''));
  copy.graph.input = copy.graph.input.filter((i) => need.has(i.name) || !model.hasInitializer(i.name));
  copy.graph.value_info = (copy.graph.value_info ?? []).filter((v) => need.has(v.name));
  copy.proto.metadata_props = [];
  copy.invalidate();
  return copy;
}
