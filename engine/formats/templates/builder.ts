/**
 * Builds an ONNX graph from a state_dict, layer by layer, the way an architecture's forward()
 * would run it. Layer sizes come from the weights; the builder records which keys it used, which
 * it looked for and did not find, and shape disagreements, so a template that does not fit says
 * exactly why instead of building a wrong graph.
 *
 * Conventions every template shares: NCHW input 'input' with a symbolic batch 'N', output
 * 'logits' [N, K], opset 13, BatchNormalization kept (epsilon 1e-5, torch's default), convolutions
 * padded by kernel//2 (as every supported architecture does), initializers named by their keys.
 */
import { GraphBuilder } from '../../graph/builder';
import type { OnnxModel } from '../../graph/model';
import { windowOutput } from '../../graph/shapes';
import { toFloat32, type Tensor } from '../../tensor';

export type StateDict = Map<string, Tensor>;

/** A feature map flowing through the graph: its tensor name and [C, H, W]. */
export interface Act {
  name: string;
  c: number;
  h: number;
  w: number;
}

/** A flat feature vector [N, n]. */
export interface Vec {
  name: string;
  n: number;
}

export interface TemplateProblems {
  missing: string[];
  unexpected: string[];
  problems: string[];
}

export class TemplateMismatch extends Error {
  constructor(readonly details: TemplateProblems) {
    super('the weights do not fit the template');
  }
}

export const BN_EPSILON = 1e-5;

export interface ConvOptions {
  stride?: number | [number, number];
  /** [top, left, bottom, right]; default kernel//2 on every side. */
  pads?: [number, number, number, number];
  dilation?: [number, number];
  /** Default: read from the weight's shape. */
  groups?: number;
}

export interface PoolOptions {
  kernel: [number, number];
  stride: [number, number];
  pads: [number, number, number, number];
  dilation?: [number, number];
  /** AveragePool: count the zero padding in the divisor (torch's count_include_pad=True). */
  countIncludePad?: boolean;
  /**
   * torch's ceil_mode=True: a last, partial window where the input runs out, except one that would
   * start in the end padding (ONNX's ceil_mode, same rule: windowOutput).
   */
  ceil?: boolean;
}

/** Output positions of a window sliding over n positions (floor mode). */
function windows(n: number, kernel: number, stride: number, pad: number, dilation: number): number {
  return Math.floor((n + pad - dilation * (kernel - 1) - 1) / stride) + 1;
}

export class TemplateBuilder {
  readonly g = new GraphBuilder('main', 13);
  readonly used = new Set<string>();
  readonly missing: string[] = [];
  readonly problems: string[] = [];
  private inputDims?: [number, number, number];
  /** Feature maps whose size does not depend on the input's (adaptive pools' outputs). */
  private readonly sizeFree = new Set<string>();
  /**
   * Whether a layer's shape depends on the input size: a flatten of a map no adaptive pool
   * produced. Networks without one accept any input size their convolutions allow.
   */
  sizeDependent = false;
  private added = new Map<string, string>();
  private relu6Bounds?: [string, string];

  constructor(readonly sd: StateDict) {}

  has(key: string): boolean {
    return this.sd.has(key);
  }

  dims(key: string): readonly number[] | undefined {
    return this.sd.get(key)?.dims;
  }

  /** A state_dict tensor the graph needs; a missing one is recorded and undefined returned. */
  tensor(key: string, rank?: number): Tensor | undefined {
    const t = this.sd.get(key);
    if (!t) {
      if (!this.missing.includes(key)) this.missing.push(key);
      return undefined;
    }
    this.used.add(key);
    if (rank !== undefined && t.dims.length !== rank) {
      this.problems.push(`${key} has ${t.dims.length} dims [${t.dims.join(', ')}], expected ${rank}`);
      return undefined;
    }
    return t;
  }

  /** The initializer for a key (added once, as float32, under the key's own name). */
  param(key: string, t: Tensor): string {
    const known = this.added.get(key);
    if (known) return known;
    if (t.dtype === 'int64' || t.dtype === 'int32' || t.dtype === 'bool') this.problems.push(`${key} holds ${t.dtype} values, not weights`);
    const name = this.g.initializer(key, toFloat32(t));
    this.added.set(key, name);
    return name;
  }

  private out(hint: string): string {
    return this.g.fresh(hint);
  }

  input(c: number, h: number, w: number): Act {
    this.inputDims = [c, h, w];
    return { name: this.g.input('input', 'float32', ['N', c, h, w]), c, h, w };
  }

  /**
   * A Conv2d from `prefix`.weight (and .bias when present). Templates give only the stride and pad by
   * kernel//2; a pickled module gives every hyperparameter (pads [top, left, bottom, right]).
   */
  conv(x: Act, prefix: string, opts: ConvOptions = {}): Act {
    const w = this.tensor(`${prefix}.weight`, 4);
    if (!w) return x;
    const [out, perGroup, kh, kw] = w.dims;
    let groups = opts.groups ?? 1;
    if (opts.groups !== undefined ? perGroup * groups !== x.c : perGroup !== x.c) {
      if (opts.groups === undefined && perGroup > 0 && x.c % perGroup === 0 && out % (x.c / perGroup) === 0) groups = x.c / perGroup;
      else {
        this.problems.push(`${prefix}.weight takes ${perGroup * groups} input channels but the layer before it gives ${x.c}`);
        return { ...x, c: out };
      }
    }
    const [sh, sw] = typeof opts.stride === 'number' || opts.stride === undefined ? [opts.stride ?? 1, opts.stride ?? 1] : opts.stride;
    const [dh, dw] = opts.dilation ?? [1, 1];
    const pads = opts.pads ?? [Math.floor(kh / 2), Math.floor(kw / 2), Math.floor(kh / 2), Math.floor(kw / 2)];
    const inputs = [x.name, this.param(`${prefix}.weight`, w)];
    const bias = this.sd.get(`${prefix}.bias`);
    if (bias) {
      this.used.add(`${prefix}.bias`);
      inputs.push(this.param(`${prefix}.bias`, bias));
    }
    const name = this.g.node('Conv', inputs, { kernel_shape: [kh, kw], strides: [sh, sw], pads, group: groups, dilations: [dh, dw] }, { name: prefix, outputs: [this.out(prefix)] })[0];
    const h = windows(x.h, kh, sh, pads[0] + pads[2], dh), wd = windows(x.w, kw, sw, pads[1] + pads[3], dw);
    if (h < 1 || wd < 1) this.problems.push(`${prefix} gets a ${x.h}×${x.w} input, too small for its ${kh}×${kw} kernel: the input size is wrong for these weights`);
    return { name, c: out, h: Math.max(h, 1), w: Math.max(wd, 1) };
  }

  private bnInputs(prefix: string, n: number): string[] | undefined {
    const mean = this.tensor(`${prefix}.running_mean`, 1), variance = this.tensor(`${prefix}.running_var`, 1);
    if (!mean || !variance) return undefined;
    let scale: string, bias: string;
    if (!this.has(`${prefix}.weight`) && !this.has(`${prefix}.bias`)) {
      // affine=False: BN with unit scale and zero shift.
      scale = this.g.constantFloat(new Float32Array(mean.dims[0]).fill(1), [mean.dims[0]], `${prefix}.scale`);
      bias = this.g.constantFloat(new Float32Array(mean.dims[0]), [mean.dims[0]], `${prefix}.shift`);
    } else {
      const w = this.tensor(`${prefix}.weight`, 1), b = this.tensor(`${prefix}.bias`, 1);
      if (!w || !b) return undefined;
      scale = this.param(`${prefix}.weight`, w);
      bias = this.param(`${prefix}.bias`, b);
    }
    if (this.has(`${prefix}.num_batches_tracked`)) this.used.add(`${prefix}.num_batches_tracked`);
    if (mean.dims[0] !== n) {
      this.problems.push(`${prefix} normalises ${mean.dims[0]} channels but the layer before it gives ${n}`);
      return undefined;
    }
    return [scale, bias, this.param(`${prefix}.running_mean`, mean), this.param(`${prefix}.running_var`, variance)];
  }

  bn(x: Act, prefix: string, epsilon = BN_EPSILON): Act {
    const params = this.bnInputs(prefix, x.c);
    if (!params) return x;
    const name = this.g.node('BatchNormalization', [x.name, ...params], { epsilon }, { name: prefix, outputs: [this.out(prefix)] })[0];
    return { ...x, name };
  }

  /** BatchNorm1d on a flat vector. */
  bnVec(v: Vec, prefix: string, epsilon = BN_EPSILON): Vec {
    const params = this.bnInputs(prefix, v.n);
    if (!params) return v;
    return { ...v, name: this.g.node('BatchNormalization', [v.name, ...params], { epsilon }, { name: prefix, outputs: [this.out(prefix)] })[0] };
  }

  relu<T extends { name: string }>(x: T, hint = 'relu'): T {
    return { ...x, name: this.g.node('Relu', [x.name], {}, { name: hint, outputs: [this.out(hint)] })[0] };
  }

  relu6<T extends { name: string }>(x: T, hint = 'relu6'): T {
    this.relu6Bounds ??= [this.g.constantFloat([0], [], 'relu6.min'), this.g.constantFloat([6], [], 'relu6.max')];
    return { ...x, name: this.g.node('Clip', [x.name, ...this.relu6Bounds], {}, { name: hint, outputs: [this.out(hint)] })[0] };
  }

  /** An elementwise op with no weights (Sigmoid, Tanh, LeakyRelu, Elu, HardSigmoid). */
  unary<T extends { name: string }>(x: T, op: string, attrs: Record<string, number>, hint: string): T {
    return { ...x, name: this.g.node(op, [x.name], attrs, { name: hint, outputs: [this.out(hint)] })[0] };
  }

  /** x · sigmoid(x) (SiLU). */
  silu<T extends { name: string }>(x: T, hint: string): T {
    const s = this.g.node('Sigmoid', [x.name], {}, { name: `${hint}.sigmoid`, outputs: [this.out(hint)] })[0];
    return { ...x, name: this.g.node('Mul', [x.name, s], {}, { name: hint, outputs: [this.out(hint)] })[0] };
  }

  /** x · hardsigmoid(x) (Hardswish; opset 13 has no HardSwish op). */
  hardswish<T extends { name: string }>(x: T, hint: string): T {
    const s = this.g.node('HardSigmoid', [x.name], { alpha: 1 / 6, beta: 0.5 }, { name: `${hint}.hardsigmoid`, outputs: [this.out(hint)] })[0];
    return { ...x, name: this.g.node('Mul', [x.name, s], {}, { name: hint, outputs: [this.out(hint)] })[0] };
  }

  maxPool(x: Act, kernel: number, stride: number, pad: number, hint = 'maxpool'): Act {
    return this.pool('MaxPool', x, { kernel: [kernel, kernel], stride: [stride, stride], pads: [pad, pad, pad, pad] }, hint);
  }

  /** A MaxPool or AveragePool window (pads [top, left, bottom, right]; floor mode, torch's default, unless o.ceil). */
  pool(op: 'MaxPool' | 'AveragePool', x: Act, o: PoolOptions, hint: string): Act {
    const [dh, dw] = o.dilation ?? [1, 1];
    const attrs: Record<string, number[] | number> = { kernel_shape: o.kernel, strides: o.stride, pads: o.pads };
    if (dh !== 1 || dw !== 1) attrs.dilations = [dh, dw];
    if (o.countIncludePad) attrs.count_include_pad = 1;
    if (o.ceil) attrs.ceil_mode = 1;
    const name = this.g.node(op, [x.name], attrs, { name: hint, outputs: [this.out(hint)] })[0];
    const h = windowOutput(x.h, o.kernel[0], o.stride[0], dh, o.pads[0], o.pads[2], o.ceil);
    const w = windowOutput(x.w, o.kernel[1], o.stride[1], dw, o.pads[1], o.pads[3], o.ceil);
    if (h < 1 || w < 1) this.problems.push(`${hint} gets a ${x.h}×${x.w} input, too small to pool: the input size is wrong for these weights`);
    return { ...x, name, h: Math.max(h, 1), w: Math.max(w, 1) };
  }

  add(a: Act, b: Act, hint: string): Act {
    if (a.c !== b.c || a.h !== b.h || a.w !== b.w) {
      this.problems.push(`${hint} adds a [${a.c}, ${a.h}, ${a.w}] map to a [${b.c}, ${b.h}, ${b.w}] one (a shortcut is missing or a layer has the wrong size)`);
      return a;
    }
    return { ...a, name: this.g.node('Add', [a.name, b.name], {}, { name: hint, outputs: [this.out(hint)] })[0] };
  }

  /** torch.cat of feature maps along the channels. */
  concat(xs: readonly Act[], hint: string): Act {
    if (xs.length === 1) return xs[0];
    const [first] = xs;
    if (xs.some((x) => x.h !== first.h || x.w !== first.w)) {
      this.problems.push(`${hint} concatenates maps of different sizes (${xs.map((x) => `${x.h}×${x.w}`).join(', ')})`);
      return first;
    }
    const c = xs.reduce((sum, x) => sum + x.c, 0);
    return { ...first, c, name: this.g.node('Concat', xs.map((x) => x.name), { axis: 1 }, { name: hint, outputs: [this.out(hint)] })[0] };
  }

  /** x · scale + shift, per channel. */
  channelAffine(x: Act, scale: readonly number[], shift: readonly number[], hint: string): Act {
    const s = this.g.constantFloat([...scale], [1, scale.length, 1, 1], `${hint}.scale`);
    const t = this.g.constantFloat([...shift], [1, shift.length, 1, 1], `${hint}.shift`);
    const scaled = this.g.node('Mul', [x.name, s], {}, { name: `${hint}.mul`, outputs: [this.out(hint)] })[0];
    return { ...x, name: this.g.node('Add', [scaled, t], {}, { name: hint, outputs: [this.out(hint)] })[0] };
  }

  /** a · b, elementwise, b broadcast over positions (a squeeze-excitation scale). */
  scale(a: Act, b: Act, hint: string): Act {
    if (b.c !== a.c) this.problems.push(`${hint} scales ${a.c} channels by ${b.c}`);
    return { ...a, name: this.g.node('Mul', [b.name, a.name], {}, { name: hint, outputs: [this.out(hint)] })[0] };
  }

  /** Marks weights a forward() in eval mode does not use (an auxiliary head) as accounted for. */
  unused(prefix: string): void {
    for (const k of this.sd.keys()) if (k.startsWith(`${prefix}.`)) this.used.add(k);
  }

  /**
   * torch's AdaptiveAvgPool2d: bin i of an n→m pooling averages [floor(i·n/m), ceil((i+1)·n/m)).
   * Equal bins are an AveragePool; the general case (e.g. 2×2 → 7×7) is two MatMuls with the bin matrices.
   */
  adaptiveAvgPool(x: Act, oh: number, ow: number, hint = 'avgpool'): Act {
    const pooled = this.adaptiveAvgPoolMap(x, oh, ow, hint);
    this.sizeFree.add(pooled.name);
    return pooled;
  }

  private adaptiveAvgPoolMap(x: Act, oh: number, ow: number, hint: string): Act {
    if (x.h === oh && x.w === ow) return x;
    if (oh === 1 && ow === 1) return { ...x, name: this.g.node('GlobalAveragePool', [x.name], {}, { name: hint, outputs: [this.out(hint)] })[0], h: 1, w: 1 };
    if (x.h % oh === 0 && x.w % ow === 0) {
      const kh = x.h / oh, kw = x.w / ow;
      return { ...x, name: this.g.node('AveragePool', [x.name], { kernel_shape: [kh, kw], strides: [kh, kw] }, { name: hint, outputs: [this.out(hint)] })[0], h: oh, w: ow };
    }
    const bins = (n: number, m: number) => {
      const p = new Float32Array(m * n);
      for (let i = 0; i < m; i++) {
        const start = Math.floor((i * n) / m), end = Math.ceil(((i + 1) * n) / m);
        for (let j = start; j < end; j++) p[i * n + j] = 1 / (end - start);
      }
      return p;
    };
    // cols: [W, ow] so that X[N,C,H,W] · cols → [N,C,H,ow]; rows: [oh, H] so that rows · Y → [N,C,oh,ow].
    const colsT = bins(x.w, ow);
    const cols = new Float32Array(x.w * ow);
    for (let i = 0; i < ow; i++) for (let j = 0; j < x.w; j++) cols[j * ow + i] = colsT[i * x.w + j];
    const colsName = this.g.constantFloat(cols, [x.w, ow], `${hint}.cols`);
    const rowsName = this.g.constantFloat(bins(x.h, oh), [oh, x.h], `${hint}.rows`);
    const y = this.g.node('MatMul', [x.name, colsName], {}, { name: `${hint}.cols`, outputs: [this.out(hint)] })[0];
    return { ...x, name: this.g.node('MatMul', [rowsName, y], {}, { name: `${hint}.rows`, outputs: [this.out(hint)] })[0], h: oh, w: ow };
  }

  /** A map computed position by position from `source` (a norm, an activation) depends on the input size as `source` does. */
  follows(result: string, source: string): void {
    if (this.sizeFree.has(source)) this.sizeFree.add(result);
  }

  flatten(x: Act): Vec {
    if (!this.sizeFree.has(x.name)) this.sizeDependent = true;
    return { name: this.g.node('Flatten', [x.name], { axis: 1 }, { name: 'flatten', outputs: [this.out('flatten')] })[0], n: x.c * x.h * x.w };
  }

  linear(v: Vec, prefix: string): Vec {
    const w = this.tensor(`${prefix}.weight`, 2);
    if (!w) return v;
    const [out, inF] = w.dims;
    if (inF !== v.n) this.problems.push(`${prefix}.weight takes ${inF} features but gets ${v.n} (with the input size used; see --size)`);
    const inputs = [v.name, this.param(`${prefix}.weight`, w)];
    const bias = this.sd.get(`${prefix}.bias`);
    if (bias) {
      this.used.add(`${prefix}.bias`);
      inputs.push(this.param(`${prefix}.bias`, bias));
    }
    const name = this.g.node('Gemm', inputs, { transB: 1 }, { name: prefix, outputs: [this.out(prefix)] })[0];
    return { name, n: out };
  }

  /** Checks every key was used and every needed key found, then makes the model. */
  finish(logits: Vec): { onnx: OnnxModel; numClasses: number; input: [number, number, number]; sizeAgnostic: boolean } {
    const unexpected = [...this.sd.keys()].filter((k) => !this.used.has(k) && !k.endsWith('.num_batches_tracked'));
    const last = this.g.nodes.find((n) => n.output[0] === logits.name);
    if (!last && !this.problems.length && !this.missing.length) this.problems.push('the template built no output layer');
    if (this.missing.length || unexpected.length || this.problems.length || !this.inputDims || !last) {
      throw new TemplateMismatch({ missing: this.missing, unexpected, problems: this.problems });
    }
    last.output[0] = 'logits';
    this.g.output('logits', 'float32', ['N', logits.n]);
    return { onnx: this.g.build(), numClasses: logits.n, input: this.inputDims, sizeAgnostic: !this.sizeDependent };
  }
}
