/**
 * Every TensorProto an ONNX model holds, wherever it sits: initializers, sparse initializers,
 * Constant nodes and other tensor attributes, subgraphs (If, Loop, Scan bodies), functions and
 * training graphs. Checks that must see every tensor (external data) walk this, not graph.initializer.
 */
import type { AttributeProto, GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto } from './proto';

/** A tensor of the model and where it sits, for messages ("Constant node 'c1'", "initializer"). */
export interface PlacedTensor {
  tensor: TensorProto;
  where: string;
}

function* sparseTensors(s: SparseTensorProto | undefined, where: string): Generator<PlacedTensor> {
  if (!s) return;
  if (s.values) yield { tensor: s.values, where: `values of ${where}` };
  if (s.indices) yield { tensor: s.indices, where: `indices of ${where}` };
}

function* attributeTensors(a: AttributeProto, owner: string): Generator<PlacedTensor> {
  const where = `attribute '${a.name}' of ${owner}`;
  if (a.t) yield { tensor: a.t, where };
  for (const t of a.tensors ?? []) yield { tensor: t, where };
  yield* sparseTensors(a.sparse_tensor, `sparse ${where}`);
  for (const s of a.sparse_tensors ?? []) yield* sparseTensors(s, `sparse ${where}`);
  if (a.g) yield* graphTensors(a.g, `the subgraph in ${where}`);
  for (const g of a.graphs ?? []) yield* graphTensors(g, `a subgraph in ${where}`);
}

function* nodeTensors(nodes: readonly NodeProto[] | undefined, scope: string): Generator<PlacedTensor> {
  for (let i = 0; i < (nodes?.length ?? 0); i++) {
    const n = nodes![i];
    const owner = `${n.op_type} node '${n.name || `${n.op_type}_${i}`}'${scope}`;
    for (const a of n.attribute ?? []) yield* attributeTensors(a, owner);
  }
}

function* graphTensors(g: GraphProto | undefined, scope: string): Generator<PlacedTensor> {
  if (!g) return;
  const suffix = scope ? ` (${scope})` : '';
  for (const t of g.initializer ?? []) yield { tensor: t, where: `initializer${suffix}` };
  for (const s of g.sparse_initializer ?? []) yield* sparseTensors(s, `a sparse initializer${suffix}`);
  yield* nodeTensors(g.node, suffix);
}

/** Every TensorProto the model holds, wherever it is. */
export function* modelTensors(model: ModelProto): Generator<PlacedTensor> {
  yield* graphTensors(model.graph, '');
  for (const f of model.functions ?? []) yield* nodeTensors(f.node, ` (in function '${f.name ?? ''}')`);
  for (const [i, t] of (model.training_info ?? []).entries()) {
    yield* graphTensors(t.initialization, `training info ${i} initialization`);
    yield* graphTensors(t.algorithm, `training info ${i} algorithm`);
  }
}

export function isExternal(t: TensorProto): boolean {
  return t.data_location === 1 || (t.external_data?.length ?? 0) > 0;
}

/** Whether any tensor of the model still refers to external data (none may reach onnxruntime). */
export function hasExternalData(model: ModelProto): PlacedTensor | undefined {
  for (const p of modelTensors(model)) if (isExternal(p.tensor)) return p;
  return undefined;
}

