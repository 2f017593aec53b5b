/**
 * Static shape inference for the ops image classifiers use, with the batch kept symbolic.
 * Small integer tensors (shapes, axes, Shape→Gather→Unsqueeze→Concat chains) are evaluated
 * on the way, symbolically where they depend on the batch, so that Reshape targets resolve.
 */
import { attrFloat, attrInt, attrInts, attrString, attrTensor } from './attributes';
import type { Dim, OnnxModel } from './model';
import type { NodeProto } from './proto';
import { sizeOf, toNumbers } from '../tensor';

/** The values of a small integer tensor; a string entry is a symbolic dimension such as 'N'. */
export interface SymbolicInts {
  dims: number[];
  values: Dim[];
}

export interface ShapeInference {
  shapes: Map<string, Dim[]>;
  ints: Map<string, SymbolicInts>;
  /** Nodes whose output shape could not be derived, with why. */
  unknown: { node: string; op: string; reason: string }[];
}

const sameShapeOps = new Set([
  'BatchNormalization', 'Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'Tanh', 'HardSigmoid', 'HardSwish', 'Clip', 'Dropout',
  'Identity', 'Softmax', 'LogSoftmax', 'Elu', 'Selu', 'Gelu', 'Erf', 'Neg', 'Exp', 'Log', 'Sqrt', 'Abs', 'Cast',
  'Softplus', 'Mish', 'Reciprocal', 'Floor', 'Ceil', 'Round', 'Sign', 'Not', 'InstanceNormalization', 'LRN', 'CastLike',
  'Softsign', 'Celu', 'IsNaN', 'IsInf', 'Trilu',
]);
const broadcastOps = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Where', 'And', 'Or', 'Xor', 'Mod',
]);

export function broadcastShapes(shapes: Dim[][]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v === 1) continue;
      if (d === 1) d = v;
      else if (typeof d === 'number' && typeof v === 'number' && d !== v) throw new Error(`cannot broadcast [${shapes.map((x) => x.join(',')).join('] with [')}]`);
      else if (typeof d === 'string' && typeof v === 'number') d = v;
    }
    out.push(d);
  }
  return out;
}

function numeric(dims: Dim[], what: string): number[] {
  return dims.map((d) => {
    if (typeof d !== 'number') throw new Error(`${what} needs a static size, got '${d}'`);
    return d;
  });
}

function product(dims: Dim[]): Dim {
  const sym = dims.filter((d) => typeof d === 'string');
  const n = dims.reduce<number>((p, d) => (typeof d === 'number' ? p * d : p), 1);
  if (sym.length === 0) return n;
  return n === 1 && sym.length === 1 ? sym[0] : `${sym.join('*')}${n === 1 ? '' : `*${n}`}`;
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Output spatial size of a sliding window, per ONNX Conv / pooling rules. */
export function windowOutput(
  inSize: number, kernel: number, stride: number, dilation: number, padBegin: number, padEnd: number, ceil = false,
): number {
  const eff = (kernel - 1) * dilation + 1;
  const span = inSize + padBegin + padEnd - eff;
  const out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  // ceil_mode must not start a window entirely inside the end padding.
  return ceil && (out - 1) * stride >= inSize + padBegin ? out - 1 : out;
}

/** Resolves pads for Conv / pooling, including auto_pad. Returns [begin..., end...]. */
export function resolvePads(node: NodeProto, spatialIn: number[], kernel: number[], strides: number[], dilations: number[]): number[] {
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const n = kernel.length;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const pads = new Array<number>(2 * n).fill(0);
    for (let i = 0; i < n; i++) {
      const out = Math.ceil(spatialIn[i] / strides[i]);
      const total = Math.max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatialIn[i]);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + n] = total - pads[i];
    }
    return pads;
  }
  if (autoPad === 'VALID') return new Array<number>(2 * n).fill(0);
  return attrInts(node, 'pads') ?? new Array<number>(2 * n).fill(0);
}

function windowShape(node: NodeProto, x: Dim[], kernel: number[], channels: Dim, ceil: boolean): Dim[] {
  const spatial = numeric(x.slice(2), `${node.op_type} input`);
  const n = kernel.length;
  const strides = attrInts(node, 'strides') ?? new Array<number>(n).fill(1);
  const dilations = attrInts(node, 'dilations') ?? new Array<number>(n).fill(1);
  const pads = resolvePads(node, spatial, kernel, strides, dilations);
  const out = spatial.map((s, i) => windowOutput(s, kernel[i], strides[i], dilations[i], pads[i], pads[i + n], ceil));
  return [x[0], channels, ...out];
}

/**
 * Shapes of every tensor, batch symbolic. `observed` holds shapes measured by running the model
 * (see engine/autodiff/observe.ts); they stand in for the outputs of nodes whose shape no rule
 * here can derive, so that one such node does not leave everything after it unknown.
 */
export function inferShapes(model: OnnxModel, inputShapes: Record<string, Dim[]> = {}, observed?: ReadonlyMap<string, Dim[]>): ShapeInference {
  const shapes = new Map<string, Dim[]>();
  const ints = new Map<string, SymbolicInts>();
  const unknown: ShapeInference['unknown'] = [];
  for (const name of model.initializerNames()) {
    const p = model.initializerProto(name)!;
    const dims = (p.dims ?? []).map(Number);
    shapes.set(name, dims);
    if ((p.data_type === 7 || p.data_type === 6) && sizeOf(dims) <= 64) {
      const t = model.initializer(name);
      if (t) ints.set(name, { dims, values: toNumbers(t) });
    }
  }
  for (const input of model.inputs()) shapes.set(input.name, inputShapes[input.name] ?? input.dims);

  const intsOf = (name: string | undefined): SymbolicInts | undefined => (name ? ints.get(name) : undefined);
  const numbersOf = (name: string | undefined, what: string): number[] | undefined => {
    if (!name) return undefined;
    const v = ints.get(name);
    if (!v) throw new Error(`${what} '${name}' is not a constant`);
    return numeric(v.values, what);
  };

  for (const node of model.nodes) {
    const name = model.nodeName(node);
    let failure: string | undefined;
    try {
      const ins = node.input.map((i) => (i ? shapes.get(i) : undefined));
      const need = (i: number): Dim[] => {
        const s = ins[i];
        if (!s) throw new Error(`shape of input '${node.input[i]}' is unknown`);
        return s;
      };
      const setOut = (dims: Dim[], at = 0) => shapes.set(node.output[at], dims);
      const op = node.op_type;
      if (sameShapeOps.has(op)) {
        setOut(need(0));
        if (op === 'Dropout' && node.output[1]) setOut(need(0), 1);
        // Shape arithmetic passes through integer casts (ShuffleNet's `channels // groups`).
        const v = intsOf(node.input[0]);
        if (v && (op === 'Identity' || (op === 'Cast' && [6, 7].includes(attrInt(node, 'to', 0))))) ints.set(node.output[0], v);
      } else if (op === 'LayerNormalization') {
        const xs = need(0);
        const axis = normAxis(attrInt(node, 'axis', -1), xs.length);
        setOut(xs);
        const reduced = xs.map((d, i) => (i < axis ? d : 1));
        if (node.output[1]) setOut(reduced, 1);
        if (node.output[2]) setOut(reduced, 2);
      } else if (op === 'ScatterND' || op === 'ScatterElements') {
        setOut(need(0));
      } else if (op === 'Range') {
        const [start, limit, delta] = [0, 1, 2].map((i) => intsOf(node.input[i])?.values[0]);
        const known = [start, limit, delta].every((v) => typeof v === 'number');
        const length = known ? Math.max(0, Math.ceil(((limit as number) - (start as number)) / (delta as number))) : '?';
        setOut([length]);
        if (typeof length === 'number' && length <= 64) ints.set(node.output[0], { dims: [length], values: Array.from({ length }, (_, i) => (start as number) + i * (delta as number)) });
      } else if (broadcastOps.has(op)) {
        setOut(broadcastShapes(node.input.map((_, i) => need(i))));
        foldElementwise(node, ints);
      } else if (op === 'Conv') {
        const w = numeric(need(1), 'Conv weight');
        setOut(windowShape(node, need(0), attrInts(node, 'kernel_shape') ?? w.slice(2), w[0], false));
      } else if (op === 'MaxPool' || op === 'AveragePool' || op === 'LpPool') {
        const xs = need(0);
        setOut(windowShape(node, xs, attrInts(node, 'kernel_shape')!, xs[1], attrInt(node, 'ceil_mode', 0) === 1));
      } else if (op === 'GlobalAveragePool' || op === 'GlobalMaxPool') {
        const xs = need(0);
        setOut([xs[0], xs[1], ...xs.slice(2).map(() => 1)]);
      } else if (op === 'Gemm') {
        const a = need(0), b = need(1);
        const m = attrInt(node, 'transA', 0) ? a[1] : a[0];
        const n = attrInt(node, 'transB', 0) ? b[0] : b[1];
        setOut([m, n]);
      } else if (op === 'MatMul') {
        const a = need(0), b = need(1);
        const a2 = a.length === 1 ? [1, a[0]] : a, b2 = b.length === 1 ? [b[0], 1] : b;
        const batch = broadcastShapes([a2.slice(0, -2), b2.slice(0, -2)]);
        const out = [...batch, a2[a2.length - 2], b2[b2.length - 1]];
        if (a.length === 1) out.splice(out.length - 2, 1);
        if (b.length === 1) out.pop();
        setOut(out);
      } else if (op === 'Flatten') {
        const xs = need(0);
        const axis = normAxis(attrInt(node, 'axis', 1), xs.length);
        setOut([product(xs.slice(0, axis)), product(xs.slice(axis))]);
      } else if (op === 'Reshape') {
        const xs = need(0);
        const target = intsOf(node.input[1]);
        if (!target) throw new Error(`Reshape target '${node.input[1]}' is not a constant`);
        const out = reshapeTarget(xs, target.values, attrInt(node, 'allowzero', 0) === 1);
        setOut(out);
        const v = intsOf(node.input[0]);
        if (v && out.every((d) => typeof d === 'number')) ints.set(node.output[0], { dims: out as number[], values: v.values });
      } else if (op === 'Transpose') {
        const xs = need(0);
        const perm = attrInts(node, 'perm') ?? xs.map((_, i) => xs.length - 1 - i);
        setOut(perm.map((p) => xs[p]));
        const v = intsOf(node.input[0]);
        if (v) ints.set(node.output[0], gatherInts(v, perm.map((p) => v.dims[p]), (index) => perm.reduce<number[]>((src, p, i) => ((src[p] = index[i]), src), [])));
      } else if (op === 'Concat') {
        const parts = node.input.map((_, i) => need(i));
        const axis = normAxis(attrInt(node, 'axis', 0), parts[0].length);
        const out = [...parts[0]];
        const sizes = parts.map((p) => p[axis]);
        out[axis] = sizes.every((s) => typeof s === 'number') ? (sizes as number[]).reduce((a, b) => a + b, 0) : '?';
        setOut(out);
        const vals = node.input.map((i) => ints.get(i));
        if (vals.every((v) => v && v.dims.length === 1)) ints.set(node.output[0], { dims: [vals.reduce((n, v) => n + v!.values.length, 0)], values: vals.flatMap((v) => v!.values) });
      } else if (op === 'Split') {
        const xs = need(0);
        const axis = normAxis(attrInt(node, 'axis', 0), xs.length);
        const total = xs[axis];
        const sizes = attrInts(node, 'split') ?? numbersOf(node.input[1], 'Split sizes');
        node.output.forEach((o, i) => {
          const out = [...xs];
          out[axis] = sizes ? sizes[i] : typeof total === 'number' ? total / node.output.length : '?';
          shapes.set(o, out);
        });
      } else if (op === 'Slice') {
        const xs = need(0);
        const starts = numbersOf(node.input[1], 'Slice starts') ?? attrInts(node, 'starts')!;
        const ends = numbersOf(node.input[2], 'Slice ends') ?? attrInts(node, 'ends')!;
        const axes = numbersOf(node.input[3], 'Slice axes') ?? attrInts(node, 'axes') ?? starts.map((_, i) => i);
        const steps = numbersOf(node.input[4], 'Slice steps') ?? starts.map(() => 1);
        const out = [...xs];
        axes.forEach((a, i) => {
          const ax = normAxis(a, xs.length);
          const dim = xs[ax];
          if (typeof dim !== 'number') {
            out[ax] = '?';
            return;
          }
          out[ax] = sliceLength(dim, starts[i], ends[i], steps[i]);
        });
        setOut(out);
        const v = intsOf(node.input[0]);
        if (v) {
          // Picked positions per axis (F.pad reverses its pads this way: Reshape, Slice with step −1, Transpose).
          const picked = v.dims.map((len, axis) => {
            const k = axes.findIndex((a) => normAxis(a, v.dims.length) === axis);
            if (k < 0) return Array.from({ length: len }, (_, i) => i);
            const idx: number[] = [];
            const s = clampIndex(starts[k], len, steps[k]), e = clampIndex(ends[k], len, steps[k]);
            for (let i = s; steps[k] > 0 ? i < e : i > e; i += steps[k]) idx.push(i);
            return idx;
          });
          ints.set(node.output[0], gatherInts(v, picked.map((p) => p.length), (index) => index.map((i, axis) => picked[axis][i])));
        }
      } else if (op === 'Pad') {
        const xs = need(0);
        const pads = attrInts(node, 'pads') ?? numbersOf(node.input[1], 'Pad pads')!;
        const n = xs.length;
        setOut(xs.map((d, i) => (typeof d === 'number' ? d + pads[i] + pads[i + n] : d)));
      } else if (op.startsWith('Reduce') || op === 'ArgMax' || op === 'ArgMin') {
        const xs = need(0);
        const keep = attrInt(node, 'keepdims', 1) === 1;
        let axes = attrInts(node, 'axes') ?? (node.input[1] ? numbersOf(node.input[1], `${op} axes`) : undefined);
        if (op === 'ArgMax' || op === 'ArgMin') axes = [attrInt(node, 'axis', 0)];
        const noop = attrInt(node, 'noop_with_empty_axes', 0) === 1;
        const set = new Set((axes && axes.length ? axes : noop ? [] : xs.map((_, i) => i)).map((a) => normAxis(a, xs.length)));
        setOut(keep ? xs.map((d, i) => (set.has(i) ? 1 : d)) : xs.filter((_, i) => !set.has(i)));
      } else if (op === 'Squeeze') {
        const xs = need(0);
        const axes = (attrInts(node, 'axes') ?? (node.input[1] ? numbersOf(node.input[1], 'Squeeze axes') : undefined))?.map((a) => normAxis(a, xs.length));
        setOut(xs.filter((d, i) => (axes ? !axes.includes(i) : d !== 1)));
        const v = intsOf(node.input[0]);
        if (v) ints.set(node.output[0], { dims: v.dims.filter((d, i) => (axes ? !axes.includes(i) : d !== 1)), values: v.values });
      } else if (op === 'Unsqueeze') {
        const xs = need(0);
        const axesRaw = attrInts(node, 'axes') ?? numbersOf(node.input[1], 'Unsqueeze axes')!;
        const rank = xs.length + axesRaw.length;
        const axes = axesRaw.map((a) => normAxis(a, rank)).sort((a, b) => a - b);
        const out = [...xs];
        for (const a of axes) out.splice(a, 0, 1);
        setOut(out);
        const v = intsOf(node.input[0]);
        if (v) ints.set(node.output[0], { dims: out.map(Number), values: v.values });
      } else if (op === 'Shape') {
        const xs = need(0);
        const start = attrInt(node, 'start', 0), end = attrInt(node, 'end', xs.length);
        const values = xs.slice(normAxis(start, xs.length), normAxis(end, xs.length) || xs.length);
        setOut([values.length]);
        ints.set(node.output[0], { dims: [values.length], values });
      } else if (op === 'Size') {
        setOut([]);
        const xs = need(0);
        ints.set(node.output[0], { dims: [], values: [product(xs)] });
      } else if (op === 'Gather') {
        const data = need(0), indices = need(1);
        const axis = normAxis(attrInt(node, 'axis', 0), data.length);
        setOut([...data.slice(0, axis), ...indices, ...data.slice(axis + 1)]);
        const v = intsOf(node.input[0]), idx = intsOf(node.input[1]);
        if (v && idx && v.dims.length === 1) {
          const n = v.values.length;
          ints.set(node.output[0], { dims: idx.dims, values: numeric(idx.values, 'Gather indices').map((i) => v.values[i < 0 ? i + n : i]) });
        }
      } else if (op === 'Constant') {
        const t = attrTensor(node, 'value');
        const vi = attrInts(node, 'value_ints'), vint = attrInt(node, 'value_int'), vf = attrFloat(node, 'value_float');
        if (t) {
          setOut([...t.dims]);
          if ((t.dtype === 'int64' || t.dtype === 'int32') && sizeOf(t.dims) <= 64) ints.set(node.output[0], { dims: [...t.dims], values: toNumbers(t) });
        } else if (vi) {
          setOut([vi.length]);
          ints.set(node.output[0], { dims: [vi.length], values: vi });
        } else if (vint !== undefined) {
          setOut([]);
          ints.set(node.output[0], { dims: [], values: [vint] });
        } else if (vf !== undefined) setOut([]);
        else throw new Error('Constant without a supported value attribute');
      } else if (op === 'ConstantOfShape') {
        const target = intsOf(node.input[0]);
        if (!target) throw new Error(`ConstantOfShape shape '${node.input[0]}' is not a constant`);
        setOut(target.values);
        const fill = attrTensor(node, 'value');
        const count = target.values.every((d) => typeof d === 'number') ? sizeOf(target.values as number[]) : Infinity;
        if (fill && (fill.dtype === 'int64' || fill.dtype === 'int32') && count <= 64) {
          ints.set(node.output[0], { dims: target.values as number[], values: new Array<Dim>(count).fill(toNumbers(fill)[0]) });
        }
      } else if (op === 'Expand') {
        const target = intsOf(node.input[1]);
        if (!target) throw new Error(`Expand shape '${node.input[1]}' is not a constant`);
        setOut(broadcastShapes([need(0), target.values]));
      } else if (op === 'Tile') {
        const reps = numbersOf(node.input[1], 'Tile repeats')!;
        setOut(need(0).map((d, i) => (typeof d === 'number' ? d * reps[i] : reps[i] === 1 ? d : '?')));
      } else if (op === 'Resize' || op === 'Upsample') {
        const xs = need(0);
        const sizes = node.input[3] ? intsOf(node.input[3]) : undefined;
        if (sizes && sizes.values.length) setOut(sizes.values);
        else throw new Error(`${op} with scales is not supported by static shape inference`);
      } else {
        throw new Error(`no shape rule for ${op}`);
      }
    } catch (e) {
      failure = e instanceof Error ? e.message : String(e);
    }
    for (const o of node.output) {
      const measured = o ? observed?.get(o) : undefined;
      if (measured && (!shapes.has(o) || shapes.get(o)!.includes('?'))) shapes.set(o, measured);
    }
    if (failure !== undefined && !node.output.every((o) => !o || observed?.has(o))) unknown.push({ node: name, op: node.op_type, reason: failure });
  }
  return { shapes, ints, unknown };
}

/** A small integer tensor of the given dims whose element at `index` is v's element at source(index). */
function gatherInts(v: SymbolicInts, dims: number[], source: (index: number[]) => number[]): SymbolicInts {
  const values: Dim[] = [];
  const strides = v.dims.map((_, i) => v.dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const count = sizeOf(dims);
  for (let flat = 0; flat < count; flat++) {
    const index: number[] = [];
    let rest = flat;
    for (let i = dims.length - 1; i >= 0; i--) {
      index[i] = rest % dims[i];
      rest = Math.floor(rest / dims[i]);
    }
    values.push(v.values[source(index).reduce((at, x, i) => at + x * strides[i], 0)]);
  }
  return { dims, values };
}

function clampIndex(i: number, len: number, step: number): number {
  let v = i < 0 ? i + len : i;
  if (step > 0) v = Math.min(Math.max(v, 0), len);
  else v = Math.min(Math.max(v, -1), len - 1);
  return v;
}

function sliceLength(dim: number, start: number, end: number, step: number): number {
  const s = clampIndex(start, dim, step), e = clampIndex(end, dim, step);
  return Math.max(0, Math.ceil((e - s) / step));
}

function reshapeTarget(input: Dim[], target: Dim[], allowZero: boolean): Dim[] {
  const out = target.map((d, i) => (d === 0 && !allowZero ? input[i] : d));
  const minus = out.findIndex((d) => d === -1);
  if (minus >= 0) out[minus] = quotient(factors(input), factors(out.filter((_, i) => i !== minus)));
  return out;
}

/** A product of dims as symbolic factors and one number ('N*4' and 6 → N, 24). */
function factors(dims: Dim[]): { symbols: string[]; number: number } {
  const symbols: string[] = [];
  let number = 1;
  for (const d of dims) {
    if (typeof d === 'number') number *= d;
    else for (const f of d.split('*')) /^\d+$/.test(f) ? (number *= Number(f)) : symbols.push(f);
  }
  return { symbols, number };
}

/** total / known when it is a whole product of the remaining factors, else '?'. */
function quotient(total: { symbols: string[]; number: number }, known: { symbols: string[]; number: number }): Dim {
  const rest = [...total.symbols];
  for (const f of known.symbols) {
    const at = rest.indexOf(f);
    if (at < 0 || f === '?') return '?';
    rest.splice(at, 1);
  }
  if (rest.includes('?') || known.number === 0 || total.number % known.number !== 0) return '?';
  const n = total.number / known.number;
  if (rest.length === 0) return n;
  return n === 1 ? rest.join('*') : `${rest.join('*')}*${n}`;
}

/**
 * Integer arithmetic on shape values (e.g. Mul of a Gather'd dim by a constant, Swin's padding
 * `(window − size % window) % window`, ViT's `Where(Equal(shape, −1), 1, shape)` for expand).
 * Booleans are 0 / 1; a symbolic dimension equals itself and is never negative.
 */
function foldElementwise(node: NodeProto, ints: Map<string, SymbolicInts>): void {
  const operands = node.input.map((i) => ints.get(i));
  if (operands.length === 0 || operands.some((o) => !o)) return;
  const known = operands as SymbolicInts[];
  const n = Math.max(...known.map((o) => o.values.length));
  if (known.some((o) => o.values.length !== 1 && o.values.length !== n)) return;
  const at = (o: SymbolicInts, i: number) => o.values[o.values.length === 1 ? 0 : i];
  const values: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const r = foldOne(node, known.map((o) => at(o, i)));
    if (r === undefined) return;
    values.push(r);
  }
  const widest = known.reduce((w, o) => (o.values.length > w.values.length ? o : w));
  ints.set(node.output[0], { dims: widest.dims, values });
}

function foldOne(node: NodeProto, v: Dim[]): Dim | undefined {
  const op = node.op_type;
  if (op === 'Where') return v[0] === 1 ? v[1] : v[0] === 0 ? v[2] : undefined;
  const [x, y] = v;
  if (op === 'Equal') {
    if (typeof x === 'number' && typeof y === 'number') return x === y ? 1 : 0;
    if (x === y) return 1;
    return (typeof x === 'number' && x < 0) || (typeof y === 'number' && y < 0) ? 0 : undefined;
  }
  if (typeof x !== 'number' || typeof y !== 'number') {
    // A symbolic batch times a number (ViT's attention heads: N·12), and back.
    if (op === 'Mul') return product([x, y]);
    if (op === 'Div' && typeof y === 'number') {
      const q = quotient(factors([x]), factors([y]));
      return q === '?' ? undefined : q;
    }
    return undefined;
  }
  switch (op) {
    case 'Add': return x + y;
    case 'Sub': return x - y;
    case 'Mul': return x * y;
    case 'Div': return y === 0 ? undefined : Math.trunc(x / y);
    case 'Mod': {
      if (y === 0) return undefined;
      // fmod = 0: the result takes the divisor's sign (Python's %); fmod = 1: the dividend's (C's fmod).
      const r = x % y;
      return attrInt(node, 'fmod', 0) === 1 || r === 0 || (r < 0) === (y < 0) ? r : r + y;
    }
    default: return undefined;
  }
}
