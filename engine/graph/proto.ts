/**
 * The ONNX protobuf messages, read and written by protobufjs from the official schema
 * (onnx-schema.json, generated from onnx.proto by tools/gen-onnx-schema.mjs).
 * The interfaces below type the fields the engine uses; protobufjs does the decoding.
 */
import protobuf from 'protobufjs/light.js';
import schema from './onnx-schema.json';

// int64 fields (dims, attribute ints) decode as plain numbers: shapes and attributes of
// real models are far below 2^53, and numbers keep every caller free of Long objects.
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();

const root = protobuf.Root.fromJSON(schema as protobuf.INamespace);
const ModelProtoType = root.lookupType('onnx.ModelProto');
const TensorProtoType = root.lookupType('onnx.TensorProto');

export const enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  BFLOAT16 = 16,
}

export const enum AttributeType {
  UNDEFINED = 0,
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  GRAPH = 5,
  FLOATS = 6,
  INTS = 7,
  STRINGS = 8,
  TENSORS = 9,
  GRAPHS = 10,
}

export interface TensorProto {
  name?: string;
  dims?: number[];
  data_type?: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: number[];
  double_data?: number[];
  uint64_data?: number[];
  string_data?: Uint8Array[];
  data_location?: number;
  external_data?: { key?: string; value?: string }[];
  doc_string?: string;
}

export interface AttributeProto {
  name: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  sparse_tensor?: SparseTensorProto;
  sparse_tensors?: SparseTensorProto[];
  doc_string?: string;
}

export interface SparseTensorProto {
  values?: TensorProto;
  indices?: TensorProto;
  dims?: number[];
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute: AttributeProto[];
  doc_string?: string;
}

export interface TensorShapeDim {
  dim_value?: number;
  dim_param?: string;
}

export interface TypeProto {
  tensor_type?: { elem_type?: number; shape?: { dim?: TensorShapeDim[] } };
}

export interface ValueInfoProto {
  name: string;
  type?: TypeProto;
  doc_string?: string;
}

export interface GraphProto {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  sparse_initializer?: SparseTensorProto[];
  doc_string?: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  value_info: ValueInfoProto[];
}

export interface OperatorSetId {
  domain?: string;
  version?: number;
}

export interface ModelProto {
  ir_version?: number;
  opset_import: OperatorSetId[];
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: number;
  doc_string?: string;
  graph?: GraphProto;
  metadata_props?: { key?: string; value?: string }[];
  training_info?: { initialization?: GraphProto; algorithm?: GraphProto }[];
  functions?: { name?: string; node?: NodeProto[] }[];
}

const arrayFields: Record<string, string[]> = {
  graph: ['node', 'initializer', 'input', 'output', 'value_info'],
  node: ['input', 'output', 'attribute'],
};

/** protobufjs leaves absent repeated fields as shared empty arrays on the prototype; give each message its own. */
function ownArrays(graph: GraphProto): void {
  for (const f of arrayFields.graph) {
    const g = graph as unknown as Record<string, unknown[]>;
    if (!Object.prototype.hasOwnProperty.call(g, f)) g[f] = [];
  }
  for (const node of graph.node) {
    const n = node as unknown as Record<string, unknown[]>;
    for (const f of arrayFields.node) if (!Object.prototype.hasOwnProperty.call(n, f)) n[f] = [];
    for (const a of node.attribute) {
      if (a.g) ownArrays(a.g);
      for (const g of a.graphs ?? []) ownArrays(g);
    }
  }
}

/** Decodes ModelProto bytes; throws protobufjs's error on malformed input (callers add the file name). */
export function decodeModelProto(bytes: Uint8Array): ModelProto {
  const message = ModelProtoType.decode(bytes) as unknown as ModelProto;
  if (!Object.prototype.hasOwnProperty.call(message, 'opset_import')) message.opset_import = [];
  if (message.graph) ownArrays(message.graph);
  return message;
}

export function encodeModelProto(model: ModelProto): Uint8Array {
  return ModelProtoType.encode(ModelProtoType.fromObject(model as unknown as Record<string, unknown>)).finish();
}

export function encodeTensorProto(tensor: TensorProto): Uint8Array {
  return TensorProtoType.encode(TensorProtoType.fromObject(tensor as unknown as Record<string, unknown>)).finish();
}

export function emptyGraph(name: string): GraphProto {
  return { node: [], name, initializer: [], input: [], output: [], value_info: [] };
}
