/** What `info` shows about a model: its interface, ops, layers and BN state. */
import type { LoadedModel } from './formats/types';
import type { ValueSpec } from './graph/model';
import { bnLayers, bnStatus, convLayers, type BnStatus } from './graph/patterns';

export interface ModelInfo {
  path: string;
  format: string;
  sha256: string;
  producer: string;
  opset: number | null;
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  numClasses: number | null;
  parameters: number;
  ops: Record<string, number>;
  /** Conv → BN (→ activation) chains found by following the graph. */
  convBnPairs: { conv: string; bn: string; activation: string | null }[];
  /** BN layers not fed directly by a conv (pre-activation nets). */
  unpairedBn: string[];
  bn: BnStatus;
  architecture?: string;
  /** For graphs built from weights: the template match, where the input size came from. */
  notes?: string[];
}

export function modelInfo(model: LoadedModel): ModelInfo {
  const onnx = model.onnx;
  const bns = bnLayers(onnx);
  const pairs = convLayers(onnx)
    .filter((c) => c.bn)
    .map((c) => ({ conv: c.name, bn: c.bn!.name, activation: c.activation?.op_type ?? null }));
  return {
    path: model.path,
    format: model.format,
    sha256: model.sha256,
    producer: [onnx.proto.producer_name, onnx.proto.producer_version].filter(Boolean).join(' ') || 'unknown',
    opset: onnx.opsetVersion() ?? null,
    inputs: onnx.inputs(),
    outputs: onnx.outputs(),
    numClasses: model.numClasses,
    parameters: onnx.parameterCount(),
    ops: Object.fromEntries(onnx.opHistogram()),
    convBnPairs: pairs,
    unpairedBn: bns.filter((b) => !b.conv).map((b) => b.name),
    bn: bnStatus(onnx),
    ...(model.architecture ? { architecture: model.architecture } : {}),
    ...(model.notes?.length ? { notes: model.notes } : {}),
  };
}

export function formatInfo(info: ModelInfo): string {
  const dims = (v: ValueSpec) => `${v.name}: ${v.dtype} [${v.dims.join(', ')}]`;
  const lines = [
    `${info.path}`,
    `  format:      ${info.format}${info.architecture ? ` (architecture ${info.architecture})` : ''}, producer ${info.producer}, opset ${info.opset ?? '?'}`,
    `  sha256:      ${info.sha256}`,
    `  inputs:      ${info.inputs.map(dims).join('; ')}`,
    `  outputs:     ${info.outputs.map(dims).join('; ')}`,
    `  classes:     ${info.numClasses ?? 'unknown'}`,
    `  parameters:  ${info.parameters.toLocaleString('en-US')}`,
    `  BatchNorm:   ${info.bn.state} — ${info.bn.evidence}`,
    `  ops:         ${Object.entries(info.ops).map(([op, n]) => `${op} ×${n}`).join(', ')}`,
    `  conv→BN:     ${info.convBnPairs.length === 0 ? 'none' : info.convBnPairs.map((p) => `${p.conv}→${p.bn}${p.activation ? `→${p.activation}` : ''}`).join(', ')}`,
  ];
  for (const note of info.notes ?? []) lines.push(`  weights:     ${note}`);
  if (info.unpairedBn.length) lines.push(`  BN without a conv before it: ${info.unpairedBn.join(', ')}`);
  return lines.join('\n');
}
