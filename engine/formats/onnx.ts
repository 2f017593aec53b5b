import { createHash } from 'node:crypto';
import { BackdoorLensError, badFile } from '../errors';
import { OnnxModel } from '../graph/model';
import { checkTensorProto } from '../graph/tensor-proto';
import { checkNodeBounds } from '../graph/bounds';
import { unshareInitializerAliases } from '../graph/surgery';
import { sizeOf } from '../tensor';
import { tensorLimitError } from './limits';
import { looksLikeText } from './text';

export { looksLikeText };
import { inlineExternalData } from './onnx-external';
import { loadLimitsOf, type LoadedModel, type LoadOptions, type ModelReader } from './types';

/** The number of classes, when the model's output is [N, K]. */
export function classCountOf(model: OnnxModel): number | null {
  const out = model.outputs()[0];
  const k = out?.dims.length === 2 ? out.dims[1] : undefined;
  return typeof k === 'number' ? k : null;
}

export function decodeOnnx(path: string, bytes: Uint8Array, options: LoadOptions = {}): OnnxModel {
  const limits = loadLimitsOf(options);
  if (bytes.length === 0) throw new BackdoorLensError('unsupported-model', 'the file is empty, not an ONNX model', { file: path });
  // A ModelProto opens with ir_version (tag 0x08, a control character no text file starts with);
  // the names after it can make the head of a large graph look like text (ViT-B/16).
  if (bytes[0] !== 0x08 && looksLikeText(bytes)) throw new BackdoorLensError('unsupported-model', 'is a text file, not an ONNX model (ONNX files are binary protobuf)', { file: path });
  let model: OnnxModel;
  try {
    model = OnnxModel.fromBytes(bytes, path);
  } catch (e) {
    const detail = (e as Error).message;
    throw badFile(path, `cannot decode the ONNX protobuf (${detail}): the file is truncated or corrupt`, e);
  }
  const g = model.graph;
  if (g.node.length === 0 || g.output.length === 0 || model.proto.opset_import.length === 0) {
    throw new BackdoorLensError('unsupported-model', `is not a usable ONNX model: it decodes to ${g.node.length} nodes, ${g.output.length} outputs and ${model.proto.opset_import.length} opset imports`, { file: path });
  }
  options.interrupt?.throwIfAborted();
  // Before anything reads a tensor: external data comes from the model's folder or not at all.
  inlineExternalData(path, model.proto, { maxTensorElements: limits.maxTensorElements });
  model.invalidate();
  for (const t of g.initializer) {
    const n = sizeOf((t.dims ?? []).map(Number));
    if (n > limits.maxTensorElements) {
      throw tensorLimitError(path, `initializer '${t.name}' of shape [${(t.dims ?? []).join(', ')}]`, n, limits.maxTensorElements);
    }
    try {
      checkTensorProto(t);
    } catch (e) {
      throw badFile(path, (e as Error).message, e);
    }
  }
  // Before any session exists: no node may make more than the tensor limit, nor loop past it.
  checkNodeBounds(model, limits.maxTensorElements, options.interrupt);
  unshareInitializerAliases(model);
  return model;
}

export const onnxReader: ModelReader = {
  format: 'onnx',
  canRead: (path, head) => /\.onnx$/i.test(path) || (head.length > 0 && head[0] === 0x08),
  async read(path, bytes, options): Promise<LoadedModel> {
    const onnx = decodeOnnx(path, bytes, options);
    return {
      path,
      format: 'onnx',
      sha256: createHash('sha256').update(bytes).digest('hex'),
      fileBytes: bytes.length,
      onnx,
      findings: [],
      numClasses: options.numClasses ?? classCountOf(onnx),
    };
  },
};
