/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header naming each
 * tensor's dtype, shape and byte range, then the bytes. Reading checks every range against the
 * file before making views; writing lays tensors out back to back.
 */
import { badFile } from '../errors';
import { tensorLimitError } from './limits';
import { bytesPerElement, type DType, type Tensor } from '../tensor';
import { typedView } from './torch/tensors';

const fromCode: Record<string, DType> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', I64: 'int64', F64: 'float64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool' };
const toCode = Object.fromEntries(Object.entries(fromCode).map(([k, v]) => [v, k])) as Record<DType, string>;

/** The format's own bound on the JSON header. */
const MAX_HEADER_BYTES = 100 * 2 ** 20;

export interface SafetensorsContents {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Whether the first bytes look like a safetensors header (length, then a JSON object). */
export function looksLikeSafetensors(head: Uint8Array, fileSize?: number): boolean {
  if (head.length < 10) return false;
  const n = new DataView(head.buffer, head.byteOffset, head.byteLength).getBigUint64(0, true);
  return n >= 2n && n <= BigInt(MAX_HEADER_BYTES) && (fileSize === undefined || n + 8n <= BigInt(fileSize)) && head[8] === 0x7b;
}

export function readSafetensors(path: string, bytes: Uint8Array, maxTensorElements: number): SafetensorsContents {
  if (bytes.length < 8) throw badFile(path, `is ${bytes.length} bytes, too short for a safetensors header`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) throw badFile(path, `the safetensors header declares ${n} bytes but the file has only ${bytes.length - 8} after the length: the file is truncated`);
  if (n > BigInt(MAX_HEADER_BYTES)) throw badFile(path, `the safetensors header declares ${n} bytes, over the format's limit of ${MAX_HEADER_BYTES}`);
  const headerEnd = 8 + Number(n);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, headerEnd)).toString('utf8'));
  } catch (e) {
    throw badFile(path, `the safetensors header is not valid JSON (${(e as Error).message})`, e);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw badFile(path, 'the safetensors header is not a JSON object');
  const data = bytes.subarray(headerEnd);
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  const ranges: { name: string; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw && typeof raw === 'object' && !Array.isArray(raw)) metadata = Object.fromEntries(Object.entries(raw).filter((e): e is [string, string] => typeof e[1] === 'string'));
      continue;
    }
    const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const where = `tensor '${name}'`;
    if (!entry || typeof entry !== 'object') throw badFile(path, `${where}: its header entry is not an object`);
    const dtype = typeof entry.dtype === 'string' ? fromCode[entry.dtype] : undefined;
    if (!dtype) throw badFile(path, `${where} has dtype ${JSON.stringify(entry.dtype)}, which Backdoor Lens does not read (it reads ${Object.keys(fromCode).join(', ')})`);
    const shape = entry.shape;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw badFile(path, `${where} has an invalid shape ${JSON.stringify(shape)}`);
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || o < 0)) throw badFile(path, `${where} has invalid data_offsets ${JSON.stringify(offsets)}`);
    const [begin, end] = offsets as number[];
    const numel = (shape as number[]).reduce((a, d) => a * d, 1);
    if (numel > maxTensorElements) throw tensorLimitError(path, `${where} of shape [${shape.join(', ')}]`, numel, maxTensorElements);
    if (end < begin || end > data.length) throw badFile(path, `${where} spans bytes ${begin}..${end} of a ${data.length}-byte data section: the file is truncated or corrupt`);
    const need = numel * bytesPerElement[dtype];
    if (end - begin !== need) throw badFile(path, `${where} of shape [${shape.join(', ')}] and dtype ${entry.dtype} needs ${need} bytes but spans ${end - begin}`);
    ranges.push({ name, begin, end });
    tensors.set(name, { dtype, dims: shape as number[], data: typedView(data, dtype, begin, numel) });
  }
  ranges.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i].begin < ranges[i - 1].end && ranges[i].end > ranges[i].begin) throw badFile(path, `tensors '${ranges[i - 1].name}' and '${ranges[i].name}' overlap in the data section`);
  }
  return { tensors, metadata };
}

/** A safetensors file holding the tensors in the given order. */
export function encodeSafetensors(tensors: Iterable<[string, Tensor]>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: toCode[t.dtype], shape: [...t.dims], data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  const headerBytes = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
