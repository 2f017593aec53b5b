/**
 * An ONNX model with indexed, typed access to its graph. The protobuf message stays the
 * single source of truth; indexes are rebuilt lazily after any change made through this class.
 */
import { decodeModelProto, encodeModelProto, type GraphProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto';
import { dtypeName, tensorFromProto, tensorToProto } from './tensor-proto';
import { sizeOf, type Tensor } from '../tensor';

export type Dim = number | string;

export interface ValueSpec {
  name: string;
  /** 'float32', 'int64', … or a description of an unsupported ONNX type. */
  dtype: string;
  /** Static sizes as numbers, symbolic ones (batch) as their parameter name, unknown as '?'. */
  dims: Dim[];
}

export class OnnxModel {
  readonly proto: ModelProto;
  /** Where the model came from, for messages. */
  readonly source: string;
  private index?: {
    initializers: Map<string, TensorProto>;
    producers: Map<string, NodeProto>;
    consumers: Map<string, NodeProto[]>;
    nodeNames: Map<NodeProto, string>;
  };
  private tensorCache = new Map<string, Tensor>();

  constructor(proto: ModelProto, source = '(in memory)') {
    if (!proto.graph) throw new Error(`${source}: the ONNX model has no graph`);
    this.proto = proto;
    this.source = source;
  }

  static fromBytes(bytes: Uint8Array, source = '(in memory)'): OnnxModel {
    return new OnnxModel(decodeModelProto(bytes), source);
  }

  toBytes(): Uint8Array {
    return encodeModelProto(this.proto);
  }

  /**
   * A deep copy, safe to modify. Tensor payloads (raw_data and other typed arrays) are shared:
   * nothing writes them in place (tensor-proto.ts copies on the way in and out), and copying
   * them through an encode and decode took seconds for a 100 MB model.
   */
  clone(source = this.source): OnnxModel {
    return new OnnxModel(copyMessage(this.proto), source);
  }

  get graph(): GraphProto {
    return this.proto.graph!;
  }

  get nodes(): NodeProto[] {
    return this.graph.node;
  }

  opsetVersion(domain = ''): number | undefined {
    const entry = this.proto.opset_import.find((o) => (o.domain ?? '') === domain || (domain === '' && o.domain === 'ai.onnx'));
    return entry?.version === undefined ? undefined : Number(entry.version);
  }

  /** Call after changing the graph's nodes, inputs or initializers directly. */
  invalidate(): void {
    this.index = undefined;
    this.tensorCache.clear();
  }

  private get idx() {
    if (!this.index) {
      const initializers = new Map<string, TensorProto>();
      for (const t of this.graph.initializer) initializers.set(t.name ?? '', t);
      const producers = new Map<string, NodeProto>();
      const consumers = new Map<string, NodeProto[]>();
      const nodeNames = new Map<NodeProto, string>();
      const used = new Set<string>();
      this.nodes.forEach((node, i) => {
        for (const o of node.output) if (o) producers.set(o, node);
        for (const inp of node.input) {
          if (!inp) continue;
          let list = consumers.get(inp);
          if (!list) consumers.set(inp, (list = []));
          list.push(node);
        }
        let name = node.name || `${node.op_type}_${i}`;
        if (used.has(name)) name = `${name}#${i}`;
        used.add(name);
        nodeNames.set(node, name);
      });
      this.index = { initializers, producers, consumers, nodeNames };
    }
    return this.index;
  }

  hasInitializer(name: string): boolean {
    return this.idx.initializers.has(name);
  }

  initializerNames(): string[] {
    return [...this.idx.initializers.keys()];
  }

  initializerProto(name: string): TensorProto | undefined {
    return this.idx.initializers.get(name);
  }

  /** An initializer's values (decoded once, then cached until it changes). */
  initializer(name: string): Tensor | undefined {
    const cached = this.tensorCache.get(name);
    if (cached) return cached;
    const proto = this.idx.initializers.get(name);
    if (!proto) return undefined;
    const tensor = tensorFromProto(proto);
    this.tensorCache.set(name, tensor);
    return tensor;
  }

  /** Replaces (or adds) an initializer. */
  setInitializer(name: string, tensor: Tensor): void {
    const proto = tensorToProto(name, tensor);
    const list = this.graph.initializer;
    const at = list.findIndex((t) => t.name === name);
    if (at >= 0) list[at] = proto;
    else list.push(proto);
    if (this.index) this.index.initializers.set(name, proto);
    this.tensorCache.set(name, tensor);
  }

  removeInitializer(name: string): void {
    this.graph.initializer = this.graph.initializer.filter((t) => t.name !== name);
    this.invalidate();
  }

  /** Graph inputs the caller must feed (initializers listed as inputs are excluded). */
  inputs(): ValueSpec[] {
    return this.graph.input.filter((v) => !this.idx.initializers.has(v.name)).map(valueSpec);
  }

  outputs(): ValueSpec[] {
    return this.graph.output.map(valueSpec);
  }

  producerOf(tensor: string): NodeProto | undefined {
    return this.idx.producers.get(tensor);
  }

  consumersOf(tensor: string): NodeProto[] {
    return this.idx.consumers.get(tensor) ?? [];
  }

  /** A unique, stable name for a node (its own, or op_index for unnamed nodes). */
  nodeName(node: NodeProto): string {
    return this.idx.nodeNames.get(node) ?? node.name ?? node.op_type;
  }

  findNode(name: string): NodeProto | undefined {
    for (const [node, n] of this.idx.nodeNames) if (n === name) return node;
    return undefined;
  }

  opHistogram(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const n of this.nodes) counts.set(n.op_type, (counts.get(n.op_type) ?? 0) + 1);
    return new Map([...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
  }

  /** Elements in floating-point initializers (the learnable parameters and BN statistics). */
  parameterCount(): number {
    let n = 0;
    for (const t of this.graph.initializer) {
      if ([1, 10, 11, 16].includes(t.data_type ?? 0)) n += sizeOf((t.dims ?? []).map(Number));
    }
    return n;
  }

  /**
   * The readable name of the layer a node belongs to: the module path of its parameters when the
   * exporter kept them ('layer1.0.bn1' from 'layer1.0.bn1.weight'), else the node's own name.
   */
  layerName(node: NodeProto): string {
    for (const input of node.input.slice(1)) {
      const m = /^(.*)\.(weight|bias|running_mean|running_var)$/.exec(input);
      if (m && this.idx.initializers.has(input)) return m[1];
    }
    const name = this.nodeName(node);
    // torch >= 1.13 names nodes '/layer1/layer1.0/bn1/BatchNormalization': keep the module path.
    const path = /^\/(?:.*\/)?([^/]+)\/[A-Za-z]+(?:_\d+)?$/.exec(name);
    return path ? path[1] : name;
  }
}

export function valueSpec(v: ValueInfoProto): ValueSpec {
  const tt = v.type?.tensor_type;
  const dims: Dim[] = (tt?.shape?.dim ?? []).map((d) =>
    d.dim_value !== undefined && d.dim_value !== null && Number(d.dim_value) > 0 ? Number(d.dim_value) : d.dim_param || '?',
  );
  return { name: v.name, dtype: tt ? dtypeName(tt.elem_type) : 'non-tensor', dims };
}

/** A deep copy of a decoded protobuf message (prototypes kept, for protobufjs' defaults), typed arrays shared. */
function copyMessage<T>(value: T): T {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return (value.length > 0 && typeof value[0] !== 'object' ? value.slice() : value.map(copyMessage)) as T;
  const copy = Object.create(Object.getPrototypeOf(value) as object) as Record<string, unknown>;
  for (const [key, field] of Object.entries(value)) copy[key] = copyMessage(field);
  return copy as T;
}
