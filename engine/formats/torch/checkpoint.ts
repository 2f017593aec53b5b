/**
 * Reads what torch.save wrote, without running it. Since PyTorch 1.6 that is a zip holding
 * `<archive>/data.pkl` (the pickled object, with tensors as persistent ids) and one record per
 * storage under `<archive>/data/`. Older files (and plain pickles) are scanned for unsafe globals
 * and then refused with a clear message.
 */
import { endianness } from 'node:os';
import { BackdoorLensError, badFile } from '../../errors';
import { isZip, ZipArchive, ZipError, type ZipAnomaly } from '../../io/zip';
import { bytesPerElement } from '../../tensor';
import { baseAllowlist, GlobalArgumentError, type SafeGlobal } from '../pickle/globals';
import { PickleError, PickleMachine, type GlobalUse } from '../pickle/machine';
import { PyDict, PyGlobal, PyObject, PyStorage, PyTensor, PyTuple, describe, type PyValue } from '../pickle/values';
import { archiveFindings, pickleFindings, UnsafeCheckpointError } from '../unsafe';
import { tensorLimitError } from '../limits';
import { rebuildTensor, storageDtypes, torchDtypes, unreadableStorages } from './tensors';
import type { ModelFormat } from '../../report/types';

export interface CheckpointContext {
  path: string;
  sha256: string;
  maxTensorElements: number;
  /** The format to report in a refusal (pytorch, or backdoorbench once known). */
  format?: ModelFormat;
}

/** The allowlist for torch checkpoints: the base one plus tensor and parameter rebuilds. */
export function torchAllowlist(maxElements: number): Map<string, SafeGlobal> {
  const m = baseAllowlist();
  for (const s of unreadableStorages) m.set(`torch.${s}`, {});
  m.set('torch._utils._rebuild_tensor_v2', { call: (a) => new PyTensor(rebuildTensor(a[0], a[1], a[2], a[3], maxElements)) });
  m.set('torch._utils._rebuild_tensor', { call: (a) => new PyTensor(rebuildTensor(a[0], a[1], a[2], a[3], maxElements)) });
  // v3 passes the dtype separately, over an untyped (byte) storage.
  m.set('torch._utils._rebuild_tensor_v3', {
    call: (a) => {
      const [storage, , , , , , dtypeArg] = a;
      const dtype = dtypeArg instanceof PyGlobal && dtypeArg.module === 'torch' ? torchDtypes[dtypeArg.name] : undefined;
      if (!(storage instanceof PyStorage) || !dtype) throw new GlobalArgumentError(`_rebuild_tensor_v3 with dtype ${describe(dtypeArg ?? null)}, which Backdoor Lens does not read`);
      const size = bytesPerElement[dtype];
      if (storage.bytes.length % size !== 0) throw new GlobalArgumentError(`storage '${storage.key}' holds ${storage.bytes.length} bytes, not a whole number of ${dtype} elements`);
      const typed = new PyStorage(storage.key, dtype, storage.bytes.length / size, storage.bytes);
      return new PyTensor(rebuildTensor(typed, a[1], a[2], a[3], maxElements));
    },
  });
  const parameter: SafeGlobal = {
    call: (a) => {
      if (!(a[0] instanceof PyTensor)) throw new GlobalArgumentError('a parameter is rebuilt from something that is not a tensor');
      return a[0];
    },
  };
  m.set('torch._utils._rebuild_parameter', parameter);
  m.set('torch._utils._rebuild_parameter_with_state', parameter);
  return m;
}

function refuse(ctx: CheckpointContext, uses: readonly GlobalUse[], where: string, anomalies: readonly ZipAnomaly[] = [], extra?: string): never {
  throw new UnsafeCheckpointError(ctx.path, [...archiveFindings(anomalies), ...pickleFindings(uses, where)], { format: ctx.format ?? 'pytorch', sha256: ctx.sha256, extra });
}

/** Runs one pickle; unsafe globals (even in a pickle that later breaks) become a refusal. */
function runChecked(ctx: CheckpointContext, machine: PickleMachine, where: string): PyValue {
  let value: PyValue;
  try {
    value = machine.run();
  } catch (e) {
    // A call made before the pickle broke would still have run in Python: the refusal comes first.
    if (machine.dangerous) refuse(ctx, machine.uses, where, [], `its pickle is also unreadable: ${(e as Error).message}`);
    if (e instanceof PickleError) throw badFile(ctx.path, `${where}: ${e.message}`, e);
    throw e;
  }
  if (machine.uses.length) refuse(ctx, machine.uses, where);
  return value;
}

function storageLoader(zip: ZipArchive, prefix: string, ctx: CheckpointContext) {
  const storages = new Map<string, PyStorage>();
  return (pid: PyValue): PyValue => {
    const items = pid instanceof PyTuple ? pid.items : undefined;
    if (!items || items[0] !== 'storage' || items.length < 5) throw new GlobalArgumentError(`persistent id ${describe(pid)} is not a torch storage reference`);
    const [, type, key, , numel] = items;
    if (typeof key !== 'string' || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) throw new GlobalArgumentError(`persistent id ${describe(pid)} is malformed`);
    const known = storages.get(key);
    if (known) return known;
    const className = type instanceof PyGlobal ? type.name : describe(type);
    const dtype = storageDtypes[className];
    if (!dtype) {
      throw new BackdoorLensError('bad-file', `storage '${key}' has type ${className}, a dtype Backdoor Lens does not read (it reads float32, float16, bfloat16, float64 and integer storages)`, { file: ctx.path });
    }
    if (numel > ctx.maxTensorElements) {
      throw tensorLimitError(ctx.path, `storage '${key}'`, numel, ctx.maxTensorElements);
    }
    const name = `${prefix}/data/${key}`;
    if (!zip.has(name)) throw badFile(ctx.path, `the checkpoint refers to storage '${key}' but has no record ${name}: the file is truncated or corrupt`);
    let bytes: Uint8Array;
    try {
      bytes = zip.read(name);
    } catch (e) {
      throw badFile(ctx.path, `${name}: ${(e as Error).message}`, e);
    }
    const need = numel * bytesPerElement[dtype];
    if (bytes.length !== need) {
      throw badFile(ctx.path, `storage '${key}' declares ${numel} ${dtype} elements (${need} bytes) but its record ${name} holds ${bytes.length} bytes: the file is truncated or corrupt`);
    }
    const s = new PyStorage(key, dtype, numel, bytes);
    storages.set(key, s);
    return s;
  };
}

function readZipCheckpoint(bytes: Uint8Array, ctx: CheckpointContext): PyValue {
  let zip: ZipArchive;
  try {
    zip = new ZipArchive(bytes, { collectAnomalies: true, maxEntryBytes: Math.max(bytes.length * 16, 1 << 20) });
  } catch (e) {
    if (e instanceof ZipError) throw badFile(ctx.path, `not a readable torch checkpoint: ${e.message}`, e);
    throw e;
  }
  const first = zip.records[0]?.name ?? '';
  const slash = first.indexOf('/');
  if (slash <= 0) throw new BackdoorLensError('unsupported-model', `is a zip but not a torch.save checkpoint (its first entry '${first}' is not inside an archive folder)`, { file: ctx.path });
  // torch reads the archive folder from the first entry and loads <folder>/data.pkl only.
  const prefix = first.slice(0, slash);
  const anomalies = [...zip.anomalies];
  const pickles = zip.names().filter((n) => /(^|\/)data\.pkl$/.test(n));
  if (pickles.length > 1) {
    anomalies.push({ kind: 'duplicate-name', names: pickles, message: `the zip holds ${pickles.length} pickles named data.pkl (${pickles.join(', ')}); torch.load reads only ${prefix}/data.pkl` });
  }
  if (anomalies.length) refuse(ctx, [], '', anomalies);
  const dataPkl = `${prefix}/data.pkl`;
  if (!zip.has(dataPkl)) {
    if (zip.has(`${prefix}/constants.pkl`) || zip.names().some((n) => n.startsWith(`${prefix}/code/`))) {
      throw new BackdoorLensError('unsupported-model', 'is a TorchScript archive (torch.jit.save), which Backdoor Lens does not read: export the model with torch.onnx.export, or save its state_dict with torch.save(model.state_dict(), path)', { file: ctx.path });
    }
    throw new BackdoorLensError('unsupported-model', `is a zip but not a torch.save checkpoint: it has no ${dataPkl}`, { file: ctx.path });
  }
  const order = zip.has(`${prefix}/byteorder`) ? Buffer.from(zip.read(`${prefix}/byteorder`)).toString('latin1').trim() : 'little';
  if (order !== 'little') throw new BackdoorLensError('unsupported-model', `stores its tensors ${order}-endian; only little-endian checkpoints are read`, { file: ctx.path });
  if (endianness() !== 'LE') throw new BackdoorLensError('unsupported-model', 'checkpoints are read only on little-endian machines', { file: ctx.path });
  let pkl: Uint8Array;
  try {
    pkl = zip.read(dataPkl);
  } catch (e) {
    throw badFile(ctx.path, `${dataPkl}: ${(e as Error).message}`, e);
  }
  const machine = new PickleMachine(pkl, { allowlist: torchAllowlist(ctx.maxTensorElements), persistentLoad: storageLoader(zip, prefix, ctx) });
  return runChecked(ctx, machine, dataPkl);
}

/** torch.save's magic number, the first pickle of a pre-1.6 (non-zip) checkpoint. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/**
 * Pre-1.6 files are a run of pickles (magic, protocol, system info, the object, storage keys)
 * followed by raw storages. We scan every pickle for unsafe globals, then refuse the format.
 */
function scanLegacy(bytes: Uint8Array, ctx: CheckpointContext): never {
  // Only the globals matter here: storages and tensors become placeholders, their bytes are never read.
  const allowlist = torchAllowlist(ctx.maxTensorElements);
  for (const rebuild of ['_rebuild_tensor_v2', '_rebuild_tensor', '_rebuild_parameter', '_rebuild_parameter_with_state']) {
    allowlist.set(`torch._utils.${rebuild}`, { call: () => new PyObject('legacy tensor', []) });
  }
  const persistentLoad = (pid: PyValue) => new PyObject(`legacy storage ${describe(pid)}`, []);
  const first = new PickleMachine(bytes, { allowlist, persistentLoad });
  const magic = runChecked(ctx, first, 'the pickle');
  if (magic !== LEGACY_MAGIC) {
    throw new BackdoorLensError('unsupported-model', 'is a plain pickle, not a torch.save checkpoint or safetensors file; nothing unsafe was found in it, but Backdoor Lens reads only torch.save (zip) checkpoints, safetensors and ONNX', { file: ctx.path });
  }
  let at = first.end;
  for (const part of ['protocol version', 'system info', 'object', 'storage keys']) {
    const m = new PickleMachine(bytes, { allowlist, persistentLoad }, at);
    runChecked(ctx, m, `the legacy checkpoint's ${part} pickle`);
    at = m.end;
  }
  throw new BackdoorLensError('unsupported-model', "uses torch.save's legacy format (PyTorch < 1.6, or _use_new_zipfile_serialization=False), which is not supported; nothing unsafe was found in its pickles. Re-save it with a current PyTorch: torch.save(torch.load(path, weights_only=True), new_path)", { file: ctx.path });
}

/** The object a torch checkpoint holds, as inert values with tensors over the file's bytes. */
export function readTorchObject(bytes: Uint8Array, ctx: CheckpointContext): PyValue {
  if (isZip(bytes)) return readZipCheckpoint(bytes, ctx);
  if (bytes.length === 0) throw badFile(ctx.path, 'the file is empty');
  return scanLegacy(bytes, ctx);
}

/** Keys of a dict whose values are all tensors, as a state_dict has. */
export function isTensorDict(v: PyValue | undefined): v is PyDict {
  if (!(v instanceof PyDict) || v.entries.size === 0) return false;
  for (const [k, x] of v.entries) if (typeof k !== 'string' || !(x instanceof PyTensor)) return false;
  return true;
}
