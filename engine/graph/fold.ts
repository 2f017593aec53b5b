/**
 * Folds the integer side-chains exporters emit to compute shapes at run time
 * (Shape → Gather → Unsqueeze → Concat → Reshape) into constants. A dimension that depends
 * on the symbolic batch becomes Reshape's 0 ("copy this dim") when it sits where the input has
 * the same symbolic dim, so the folded model still runs at any batch size.
 */
import { attrInt } from './attributes';
import type { OnnxModel } from './model';
import { inferShapes } from './shapes';
import { dtypeFromDataType } from './tensor-proto';

const foldable = new Set([
  'Shape', 'Size', 'Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Slice', 'Add', 'Sub', 'Mul', 'Div', 'Constant', 'Cast',
  // Swin's window padding: sizes mod the window, reordered into Pad's pads.
  'Mod', 'Reshape', 'Transpose', 'Where',
]);

/** ONNX element types of the integer casts whose results are folded. */
const castTargets = new Map<number, 'int64' | 'int32'>([[7, 'int64'], [6, 'int32']]);

export interface FoldResult {
  model: OnnxModel;
  /** Nodes replaced by constants or removed as dead. */
  removed: number;
}

export function foldShapeChains(model: OnnxModel): FoldResult {
  const copy = model.clone();
  const { shapes, ints } = inferShapes(copy);
  const intDtype = new Map<string, 'int64' | 'int32'>();
  for (const name of copy.initializerNames()) {
    const d = dtypeFromDataType(copy.initializerProto(name)!.data_type);
    if (d === 'int64' || d === 'int32') intDtype.set(name, d);
  }
  const folded = new Map<string, { values: number[]; dims: number[]; dtype: 'int64' | 'int32' }>();
  for (const node of copy.nodes) {
    if (!foldable.has(node.op_type)) continue;
    const out = node.output[0];
    const v = ints.get(out);
    if (!v) continue;
    let dtype: 'int64' | 'int32' | undefined;
    if (node.op_type === 'Shape' || node.op_type === 'Size') dtype = 'int64';
    else if (node.op_type === 'Constant') dtype = ints.has(out) ? 'int64' : undefined;
    else if (node.op_type === 'Cast') dtype = castTargets.get(attrInt(node, 'to', 0));
    else if (node.op_type === 'Where') dtype = intDtype.get(node.input[1]);
    else dtype = intDtype.get(node.input[0]);
    if (!dtype) continue;
    intDtype.set(out, dtype);
    if (node.op_type === 'Constant') continue; // already constant
    if (v.values.every((x) => typeof x === 'number')) folded.set(out, { values: v.values as number[], dims: v.dims, dtype });
  }
  // Reshape targets with a symbolic dim at a matching position become 0 ("keep").
  for (const node of copy.nodes) {
    if (node.op_type !== 'Reshape' || copy.hasInitializer(node.input[1]) || folded.has(node.input[1])) continue;
    const target = ints.get(node.input[1]);
    const input = shapes.get(node.input[0]);
    if (!target || !input) continue;
    const values = target.values.map((d, i) => (typeof d === 'number' ? d : d === input[i] ? 0 : NaN));
    if (values.some(Number.isNaN) || values.filter((d) => d === -1).length > 1) continue;
    folded.set(node.input[1], { values, dims: [values.length], dtype: 'int64' });
  }
  let removed = 0;
  if (folded.size > 0) {
    const before = copy.nodes.length;
    for (const [name, f] of folded) {
      const data = f.dtype === 'int64' ? BigInt64Array.from(f.values.map(BigInt)) : Int32Array.from(f.values);
      copy.setInitializer(name, { dtype: f.dtype, dims: f.dims, data });
    }
    copy.graph.node = copy.nodes.filter((n) => !n.output.some((o) => folded.has(o)));
    copy.invalidate();
    removeDeadNodes(copy);
    removed = before - copy.nodes.length;
  }
  return { model: copy, removed };
}

/** Drops nodes whose outputs nothing uses, and initializers no node reads. */
export function removeDeadNodes(model: OnnxModel): void {
  const outputs = new Set(model.graph.output.map((o) => o.name));
  for (;;) {
    const used = new Set<string>(outputs);
    for (const n of model.nodes) for (const i of n.input) used.add(i);
    const keep = model.nodes.filter((n) => n.output.some((o) => used.has(o)));
    const dropped = new Set(model.graph.initializer.map((t) => t.name ?? '').filter((name) => !used.has(name)));
    if (keep.length === model.nodes.length && dropped.size === 0) break;
    model.graph.node = keep;
    model.graph.initializer = model.graph.initializer.filter((t) => !dropped.has(t.name ?? ''));
    // Old exporters also list initializers as graph inputs; those go with them.
    model.graph.input = model.graph.input.filter((i) => !dropped.has(i.name));
    model.invalidate();
  }
}
