export { OnnxModel, valueSpec, type Dim, type ValueSpec } from './model';
export { GraphBuilder, valueInfo, toAttribute, type AttrValue } from './builder';
export { inferShapes, broadcastShapes, windowOutput, resolvePads, type ShapeInference, type SymbolicInts } from './shapes';
export { exposeTensors, insertChannelAffine, replaceInitializers, promoteInitializers, unshareInitializerAliases, type ChannelAffine } from './surgery';
export { foldShapeChains, removeDeadNodes } from './fold';
export { bnLayers, convLayers, bnStatus, type BnLayer, type ConvLayer, type BnStatus, type BnState } from './patterns';
export { attrInt, attrInts, attrFloat, attrFloats, attrString, attrTensor } from './attributes';
export { tensorFromProto, tensorToProto, dtypeName, dtypeFromDataType } from './tensor-proto';
export type { ModelProto, GraphProto, NodeProto, TensorProto, AttributeProto, ValueInfoProto } from './proto';
