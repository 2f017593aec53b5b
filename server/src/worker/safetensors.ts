/**
 * Writes the purified weights of a state_dict checkpoint back under their original keys, as
 * safetensors (8-byte little-endian header length, JSON header, raw little-endian data).
 */
import { BackdoorLensError } from '../../../engine/errors';
import type { OnnxModel } from '../../../engine/graph/model';
import type { DType } from '../../../engine/tensor';

const safetensorsDtype: Record<DType, string> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

/** The initializers named in `sourceKeys` (ONNX name → original key), under their original keys. */
export function safetensorsFromModel(model: OnnxModel, sourceKeys: ReadonlyMap<string, string>): Uint8Array {
  const entries: { key: string; dtype: string; shape: number[]; bytes: Uint8Array }[] = [];
  for (const [onnxName, key] of [...sourceKeys].sort((a, b) => a[1].localeCompare(b[1]))) {
    const t = model.initializer(onnxName);
    if (!t) throw new BackdoorLensError('internal', `the purified model lost the weight '${onnxName}' (${key})`);
    const data = t.data as ArrayBufferView;
    entries.push({ key, dtype: safetensorsDtype[t.dtype], shape: t.dims.map(Number), bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  }
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', producer: 'backdoor-lens' } };
  let offset = 0;
  for (const e of entries) {
    header[e.key] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.byteLength] };
    offset += e.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const e of entries) {
    out.set(e.bytes, at);
    at += e.bytes.byteLength;
  }
  return out;
}
