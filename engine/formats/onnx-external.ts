/**
 * ONNX external data, read by us and only from inside the model's own folder.
 *
 * A TensorProto may keep its bytes in another file (`data_location = EXTERNAL`, `location`,
 * `offset`, `length`). onnxruntime, given a model as bytes, resolves that location against the
 * working directory, so a model could read any file the user can (`.ssh/id_rsa` into a bias).
 * Any tensor anywhere in the model can do it: initializers, sparse initializers, Constant nodes and
 * other tensor attributes, subgraphs (If, Loop, Scan bodies), functions and training graphs. Each
 * one is resolved here against the model's folder after symbolic links, refused with one line naming
 * it unless it lands inside that folder in a regular file, read within that file's size, and copied
 * into the tensor; what onnxruntime gets is a self-contained model.
 */
import { closeSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { BackdoorLensError, badFile } from '../errors';
import { isExternal, modelTensors, type PlacedTensor } from '../graph/model-tensors';
import type { ModelProto, TensorProto } from '../graph/proto';
import { dtypeFromDataType, dtypeName } from '../graph/tensor-proto';
import { openRegular, readFdRange } from '../io/files';
import { bytesPerElement, sizeOf } from '../tensor';
import { tensorLimitError } from './limits';

function label(p: PlacedTensor): string {
  return `tensor '${p.tensor.name || '(unnamed)'}' (${p.where})`;
}

function entry(t: TensorProto, key: string): string | undefined {
  return t.external_data?.find((e) => e.key === key)?.value ?? undefined;
}

function nonNegative(model: string, p: PlacedTensor, key: string): number | undefined {
  const v = entry(p.tensor, key);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw badFile(model, `${label(p)} has external-data ${key} '${v.slice(0, 40)}', not a byte count`);
  return Number(v);
}

export interface ExternalDataOptions {
  maxTensorElements: number;
}

/**
 * Copies every external tensor's bytes into the tensor, reading only regular files inside the
 * model's folder. `modelPath` is the .onnx file; a model without one (bytes in memory) may hold no
 * external reference at all.
 */
export function inlineExternalData(modelPath: string | undefined, model: ModelProto, options: ExternalDataOptions): number {
  const externals = [...modelTensors(model)].filter((p) => isExternal(p.tensor));
  if (externals.length === 0) return 0;
  const file = modelPath ?? '(in memory)';
  if (!modelPath) throw badFile(file, `${label(externals[0])} keeps its data in an external file, and a model given as bytes has no folder to read it from`);
  let folder: string;
  try {
    folder = realpathSync(dirname(resolve(modelPath)));
  } catch (e) {
    throw badFile(modelPath, `cannot resolve the model's folder: ${(e as Error).message}`, e);
  }
  for (const p of externals) inlineOne(modelPath, folder, p, options);
  return externals.length;
}

function inlineOne(modelPath: string, folder: string, p: PlacedTensor, options: ExternalDataOptions): void {
  const t = p.tensor;
  const location = entry(t, 'location');
  const refuse = (why: string): never => {
    throw new BackdoorLensError('bad-file', `${label(p)}: external data '${(location ?? '').slice(0, 200)}' ${why}; not read`, { file: modelPath });
  };
  if (!location) refuse('names no file');
  if (location!.includes('\0')) refuse('has a NUL byte');
  if (isAbsolute(location!)) refuse(`is an absolute path; it must be inside the model's folder ${folder}`);
  let target: string;
  try {
    target = realpathSync(resolve(folder, location!));
  } catch {
    return refuse(`does not exist in the model's folder ${folder}`);
  }
  const inside = (path: string) => path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
  if (!inside(target)) refuse(`is outside the model's folder ${folder} (it resolves to ${target})`);

  const dtype = dtypeFromDataType(t.data_type);
  if (!dtype) refuse(`holds ${dtypeName(t.data_type)}, a type Backdoor Lens does not read`);
  const dims = (t.dims ?? []).map(Number);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw badFile(modelPath, `${label(p)} has invalid dims [${dims.join(', ')}]`);
  const n = sizeOf(dims);
  if (n > options.maxTensorElements) throw tensorLimitError(modelPath, `${label(p)} of shape [${dims.join(', ')}]`, n, options.maxTensorElements);
  const need = n * bytesPerElement[dtype!];
  const offset = nonNegative(modelPath, p, 'offset') ?? 0;
  const length = nonNegative(modelPath, p, 'length');
  if (length !== undefined && length !== need) throw badFile(modelPath, `${label(p)} declares dims [${dims.join(', ')}] (${need} bytes of ${dtype}) but external-data length ${length}`);

  const opened = openRegular(target, { what: 'external data' });
  try {
    // What was opened is what was checked: a link swapped after realpath is caught here (Linux).
    let real = target;
    try {
      real = realpathSync(`/proc/self/fd/${opened.fd}`);
    } catch {
      // no /proc: the realpath check above stands
    }
    if (!inside(real)) refuse(`is outside the model's folder ${folder} (it resolves to ${real})`);
    if (offset + need > opened.size) {
      throw badFile(modelPath, `${label(p)} needs ${need} bytes at offset ${offset} of external file '${location}', which holds ${opened.size} bytes: the data is truncated`);
    }
    const bytes = readFdRange(target, opened.fd, offset, need, 'bad-file');
    if (bytes.length !== need) throw badFile(modelPath, `external file '${location}' shrank while ${label(p)} was read`);
    t.raw_data = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  } finally {
    closeSync(opened.fd);
  }
  t.external_data = [];
  t.data_location = 0;
  t.float_data = [];
  t.int32_data = [];
  t.int64_data = [];
  t.double_data = [];
}
