/**
 * Reads what torch.save wrote, without running it. Since PyTorch 1.6 that is a zip holding
 * `<archive>/data.pkl` (the pickled object, with tensors as persistent ids) and one record per
 * storage under `<archive>/data/`. The legacy format (PyTorch < 1.6) is a run of pickles followed by
 * the raw storages, read the same way. The older tar layout and plain pickles are scanned for unsafe
 * globals and then refused with a clear message. The object may be a whole pickled model
 * (torch.save(model)): its allowlisted module classes become inert records (see modules.ts).
 */
import { endianness } from 'node:os';
import { BackdoorLensError, badFile } from '../../errors';
import { isZip, ZipArchive, ZipError, type ZipAnomaly } from '../../io/zip';
import { bytesPerElement } from '../../tensor';
import { baseAllowlist, GlobalArgumentError, type SafeGlobal } from '../pickle/globals';
import { PickleError, PickleMachine, type GlobalUse, type PickleOptions } from '../pickle/machine';
import { PyDict, PyGlobal, PyObject, PyStorage, PyTensor, PyTuple, describe, sequenceItems, type PyValue } from '../pickle/values';
import { archiveFindings, pickleFindings, UnsafeCheckpointError } from '../unsafe';
import { looksLikeText } from '../text';
import { tensorLimitError } from '../limits';
import { addModuleClasses } from './modules';
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
  // Whole pickled models (torch.save(model)): the torch.nn / torchvision classes we build graphs for.
  addModuleClasses(m);
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
    // torch.load finds members without regard to case (miniz without its case flag): so do we.
    zip = new ZipArchive(bytes, { collectAnomalies: true, caseInsensitive: true, maxEntryBytes: Math.max(bytes.length * 16, 1 << 20) });
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
  const pickles = zip.records.map((r) => r.name).filter((n) => /(^|\/)data\.pkl$/i.test(n));
  if (pickles.length > 1 && !anomalies.some((a) => a.kind === 'duplicate-name' && a.names.some((n) => /data\.pkl$/i.test(n)))) {
    anomalies.push({ kind: 'duplicate-name', names: pickles, message: `the zip holds ${pickles.length} pickles named data.pkl (${pickles.join(', ')}); torch.load reads only ${prefix}/data.pkl` });
  }
  const torchScript = torchScriptMembers(zip, prefix);
  const dataPkl = zip.nameOf(`${prefix}/data.pkl`);
  if (torchScript.length && dataPkl) {
    anomalies.push({ kind: 'torchscript', names: torchScript, message: `beside ${dataPkl} the zip holds TorchScript members (${torchScript.slice(0, 3).join(', ')}), so torch.load hands it to torch.jit.load, which runs its code/ instead of reading the weights` });
  }
  if (anomalies.length) {
    const uses = scanPickles(zip, [...pickles, ...torchScript.filter((n) => /\.pkl$/i.test(n))], ctx);
    refuse(ctx, uses, 'a pickle in the archive', anomalies, uses.some((u) => u.danger === 'dangerous') ? undefined : 'nothing unsafe was found in its pickles');
  }
  if (!dataPkl) {
    if (torchScript.length) {
      const uses = scanPickles(zip, torchScript.filter((n) => /\.pkl$/i.test(n)), ctx);
      if (uses.some((u) => u.danger === 'dangerous')) refuse(ctx, uses, `${prefix}/constants.pkl`);
      throw new BackdoorLensError('unsupported-model', 'is a TorchScript archive (torch.jit.save), which Backdoor Lens does not read (nothing unsafe was found in its pickles; its code/ is TorchScript that torch.jit.load would run): export the model with torch.onnx.export, or save its state_dict with torch.save(model.state_dict(), path)', { file: ctx.path });
    }
    throw new BackdoorLensError('unsupported-model', `is a zip but not a torch.save checkpoint: it has no ${prefix}/data.pkl`, { file: ctx.path });
  }
  const byteorder = zip.nameOf(`${prefix}/byteorder`);
  const order = byteorder ? Buffer.from(zip.read(byteorder)).toString('latin1').trim() : 'little';
  if (order !== 'little') throw new BackdoorLensError('unsupported-model', `stores its tensors ${order}-endian; only little-endian checkpoints are read`, { file: ctx.path });
  if (endianness() !== 'LE') throw new BackdoorLensError('unsupported-model', 'checkpoints are read only on little-endian machines', { file: ctx.path });
  let pkl: Uint8Array;
  try {
    pkl = zip.read(dataPkl);
  } catch (e) {
    throw badFile(ctx.path, `${dataPkl}: ${(e as Error).message}`, e);
  }
  const machine = new PickleMachine(pkl, { allowlist: torchAllowlist(ctx.maxTensorElements), persistentLoad: storageLoader(zip, prefix, ctx) });
  const value = runChecked(ctx, machine, dataPkl);
  if (machine.end < pkl.length) {
    // torch.load reads one pickle; bytes after its STOP are for some other reader to find.
    const rest = scanStream(pkl, machine.end, ctx);
    refuse(ctx, [], '', [{ kind: 'trailing-data', names: [dataPkl], message: `${dataPkl} holds ${pkl.length - machine.end} bytes after its pickle ends${rest.some((u) => u.danger === 'dangerous') ? `, a second pickle that would run ${rest.find((u) => u.danger === 'dangerous')!.qualified}` : ''} (torch.load stops at the first pickle; another loader may not)` }]);
  }
  return value;
}

/** Members that make torch.load dispatch to torch.jit.load: constants.pkl, or TorchScript source under code/. */
function torchScriptMembers(zip: ZipArchive, prefix: string): string[] {
  const lower = `${prefix}/`.toLowerCase();
  return zip.records.map((r) => r.name).filter((n) => {
    const rel = n.toLowerCase().startsWith(lower) ? n.slice(lower.length).toLowerCase() : undefined;
    return rel === 'constants.pkl' || rel?.startsWith('code/') || rel === 'bytecode.pkl';
  });
}

/** The globals every pickle in these members would reach, duplicates included (storages become placeholders). */
function scanPickles(zip: ZipArchive, names: readonly string[], ctx: CheckpointContext): GlobalUse[] {
  const uses: GlobalUse[] = [];
  for (const record of zip.records.filter((r) => names.includes(r.name))) {
    let bytes: Uint8Array;
    try {
      bytes = zip.readEntry(record);
    } catch {
      continue;
    }
    uses.push(...scanStream(bytes, 0, ctx).map((u) => ({ ...u, via: `${u.via} in ${record.name}` })));
  }
  return uses;
}

/** torch.save's magic number, the first pickle of a pre-1.6 (non-zip) checkpoint. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/** Storages and tensors become placeholders: only the globals matter when a file is scanned, not read. */
function scanOptions(ctx: CheckpointContext) {
  const allowlist = torchAllowlist(ctx.maxTensorElements);
  for (const rebuild of ['_rebuild_tensor_v2', '_rebuild_tensor', '_rebuild_tensor_v3', '_rebuild_parameter', '_rebuild_parameter_with_state']) {
    allowlist.set(`torch._utils.${rebuild}`, { call: () => new PyObject('tensor (not read)', []) });
  }
  return { allowlist, persistentLoad: (pid: PyValue) => new PyObject(`storage ${describe(pid)}`, []) };
}

/**
 * The globals of every pickle in a stream from `start`: pickle.load called again reads the next one,
 * so a harmless first pickle must not hide a second. Stops at the end, or where the bytes stop
 * being a pickle (a legacy checkpoint's raw storages); a global named before that point counts.
 */
function scanStream(bytes: Uint8Array, start: number, ctx: CheckpointContext): GlobalUse[] {
  const uses: GlobalUse[] = [];
  const options = scanOptions(ctx);
  let at = start;
  for (let count = 0; at < bytes.length && count < 10_000; count++) {
    const m = new PickleMachine(bytes, options, at);
    try {
      m.run();
    } catch {
      uses.push(...m.uses);
      break;
    }
    uses.push(...m.uses);
    if (m.end <= at) break;
    at = m.end;
  }
  return uses;
}

/** `ustar` at byte 257: the tar files torch.save wrote before 0.4 (sys_info, pickle, storages, tensors). */
function isTar(bytes: Uint8Array): boolean {
  return bytes.length >= 512 && Buffer.from(bytes.subarray(257, 262)).toString('latin1') === 'ustar';
}

/** The members of a tar archive (regular files), bounded by the archive's bytes. */
function tarMembers(bytes: Uint8Array): { name: string; data: Uint8Array }[] {
  const out: { name: string; data: Uint8Array }[] = [];
  let at = 0;
  while (at + 512 <= bytes.length && out.length < 1000) {
    const header = bytes.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const name = Buffer.from(header.subarray(0, 100)).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(Buffer.from(header.subarray(124, 136)).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    if (!Number.isSafeInteger(size) || size < 0) break;
    const type = String.fromCharCode(header[156] || 48);
    const data = bytes.subarray(at + 512, Math.min(bytes.length, at + 512 + size));
    if (type === '0' || type === '\0') out.push({ name, data });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/**
 * Files that are not zips: the legacy (pre-1.6) run of pickles, the older tar layout, or a plain
 * pickle. Every pickle in them is scanned; a dangerous one is refused with its findings. A clean
 * legacy checkpoint is read; a clean tar or plain pickle is refused with a message that says so.
 */
function readNonZip(bytes: Uint8Array, ctx: CheckpointContext): PyValue {
  if (isTar(bytes)) {
    const members = tarMembers(bytes);
    const uses = members.filter((m) => ['sys_info', 'pickle', 'storages', 'tensors'].includes(m.name)).flatMap((m) => scanStream(m.data, 0, ctx).map((u) => ({ ...u, via: `${u.via} in tar member '${m.name}'` })));
    if (uses.length) refuse(ctx, uses, 'the legacy tar checkpoint', [], 'a checkpoint in torch.save\'s legacy tar format');
    throw new BackdoorLensError('unsupported-model', "uses torch.save's legacy tar format (PyTorch < 0.4), which is not supported; nothing unsafe was found in its pickles. Re-save it with a current PyTorch: torch.save(torch.load(path, weights_only=True), new_path)", { file: ctx.path });
  }
  const { allowlist, persistentLoad } = scanOptions(ctx);
  const first = new PickleMachine(bytes, { allowlist, persistentLoad });
  let magic: PyValue;
  try {
    magic = first.run();
  } catch (e) {
    if (first.dangerous) refuse(ctx, first.uses, 'the pickle', [], `its pickle is also unreadable: ${(e as Error).message}`);
    if (e instanceof PickleError && looksLikeText(bytes)) {
      throw new BackdoorLensError('unsupported-model', 'is a text file, not a PyTorch checkpoint (torch.save writes a zip or a binary pickle)', { file: ctx.path });
    }
    if (e instanceof PickleError) throw badFile(ctx.path, `the pickle: ${e.message}`, e);
    throw e;
  }
  if (magic === LEGACY_MAGIC && first.uses.length === 0) return readLegacy(bytes, first.end, ctx);
  // Everything after the first pickle: more pickles a second pickle.load would run.
  const uses = [...first.uses, ...scanStream(bytes, first.end, ctx)];
  if (uses.length) refuse(ctx, uses, 'the pickle stream');
  throw new BackdoorLensError('unsupported-model', 'is a plain pickle, not a torch.save checkpoint or safetensors file; nothing unsafe was found in its pickles, but Backdoor Lens reads only torch.save checkpoints, safetensors and ONNX', { file: ctx.path });
}

/** torch.save's legacy protocol version (serialization.PROTOCOL_VERSION). */
const LEGACY_PROTOCOL = 1001;

/** A storage the legacy object pickle declares by persistent id. */
interface LegacyStorage {
  dtype: PyStorage['dtype'];
  numel: number;
}

/**
 * A legacy persistent id: ('module', class, source file, source) for a module class (torch returns the
 * class), or ('storage', storage class, key, location, numel, view metadata) for a storage.
 */
function legacyPersistentId(pid: PyValue, ctx: CheckpointContext): { module: PyValue } | { key: string; storage: LegacyStorage } {
  const items = pid instanceof PyTuple ? pid.items : undefined;
  if (items?.[0] === 'module' && items.length === 4) return { module: items[1] };
  if (items?.[0] !== 'storage' || items.length !== 6) throw new GlobalArgumentError(`persistent id ${describe(pid)} is not a legacy torch storage or module reference`);
  const [, type, rawKey, , numel, view] = items;
  const key = typeof rawKey === 'string' || (typeof rawKey === 'number' && Number.isSafeInteger(rawKey)) ? String(rawKey) : undefined;
  if (key === undefined || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) throw new GlobalArgumentError(`persistent id ${describe(pid)} is malformed`);
  if (view !== null) throw new BackdoorLensError('unsupported-model', `storage '${key}' is a view into another storage (PyTorch < 1.0), which Backdoor Lens does not read`, { file: ctx.path });
  const className = type instanceof PyGlobal ? type.name : describe(type);
  const dtype = storageDtypes[className];
  if (!dtype) throw new BackdoorLensError('bad-file', `storage '${key}' has type ${className}, a dtype Backdoor Lens does not read (it reads float32, float16, bfloat16, float64 and integer storages)`, { file: ctx.path });
  if (numel > ctx.maxTensorElements) throw tensorLimitError(ctx.path, `storage '${key}'`, numel, ctx.maxTensorElements);
  return { key, storage: { dtype, numel } };
}

/** Runs one pickle of a legacy stream; its globals are collected, and a broken pickle is refused or reported. */
function legacyPickle(bytes: Uint8Array, start: number, what: string, options: PickleOptions, uses: GlobalUse[], ctx: CheckpointContext): { value: PyValue; end: number } {
  const m = new PickleMachine(bytes, options, start);
  try {
    const value = m.run();
    uses.push(...m.uses);
    return { value, end: m.end };
  } catch (e) {
    uses.push(...m.uses);
    if (uses.length) refuse(ctx, uses, 'the legacy checkpoint', [], `its ${what} pickle is also unreadable: ${(e as Error).message}`);
    if (e instanceof PickleError) throw badFile(ctx.path, `the legacy checkpoint's ${what} pickle: ${e.message}`, e);
    throw e;
  }
}

/**
 * torch.save's legacy format (PyTorch < 1.6, or _use_new_zipfile_serialization=False), after its
 * magic number: the protocol version, the system information, the object (storages by persistent
 * id), the sorted list of storage keys, then each storage as an int64 element count and its raw
 * bytes, as torch.load reads them. Every pickle is scanned first, with storages as placeholders;
 * the object is read once every storage is found inside the file.
 */
function readLegacy(bytes: Uint8Array, start: number, ctx: CheckpointContext): PyValue {
  const scan = scanOptions(ctx);
  const uses: GlobalUse[] = [];
  const declared = new Map<string, LegacyStorage>();
  const declare = (pid: PyValue): PyValue => {
    const id = legacyPersistentId(pid, ctx);
    if ('module' in id) return id.module;
    const known = declared.get(id.key);
    if (known && (known.dtype !== id.storage.dtype || known.numel !== id.storage.numel)) {
      throw new GlobalArgumentError(`storage '${id.key}' is declared twice, as ${known.numel} ${known.dtype} and as ${id.storage.numel} ${id.storage.dtype} elements`);
    }
    declared.set(id.key, id.storage);
    return new PyObject(`storage ${id.key}`, []);
  };
  const version = legacyPickle(bytes, start, 'protocol version', scan, uses, ctx);
  const sysInfo = legacyPickle(bytes, version.end, 'system information', scan, uses, ctx);
  const objectStart = sysInfo.end;
  const object = legacyPickle(bytes, objectStart, 'object', { allowlist: scan.allowlist, persistentLoad: declare }, uses, ctx);
  const keys = legacyPickle(bytes, object.end, 'storage keys', scan, uses, ctx);
  if (uses.length) refuse(ctx, uses, 'the legacy checkpoint');
  if (version.value !== LEGACY_PROTOCOL) throw badFile(ctx.path, `the legacy checkpoint has protocol version ${describe(version.value)}; torch.load reads only ${LEGACY_PROTOCOL}`);
  if (sysInfo.value instanceof PyDict && sysInfo.value.get('little_endian') === false) {
    throw new BackdoorLensError('unsupported-model', 'stores its tensors big-endian; only little-endian checkpoints are read', { file: ctx.path });
  }
  if (endianness() !== 'LE') throw new BackdoorLensError('unsupported-model', 'checkpoints are read only on little-endian machines', { file: ctx.path });
  const keyList = sequenceItems(keys.value);
  if (!keyList) throw badFile(ctx.path, `the legacy checkpoint's storage keys are ${describe(keys.value)}, not a list`);
  // The storages, in the order of the keys, each bounded by the file.
  const records = new Map<string, Uint8Array>();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = keys.end;
  for (const k of keyList) {
    const key = typeof k === 'string' || typeof k === 'number' ? String(k) : describe(k);
    const storage = declared.get(key);
    if (!storage) throw badFile(ctx.path, `the legacy checkpoint lists storage '${key}', which its object never uses: the file is corrupt`);
    if (records.has(key)) throw badFile(ctx.path, `the legacy checkpoint lists storage '${key}' twice`);
    if (at + 8 > bytes.length) throw badFile(ctx.path, `storage '${key}' starts at byte ${at}, past the end of the file (${bytes.length} bytes): the file is truncated`);
    const count = view.getBigInt64(at, true);
    if (count !== BigInt(storage.numel)) throw badFile(ctx.path, `storage '${key}' holds ${count} elements at byte ${at}, but the object declares ${storage.numel}: the file is corrupt`);
    const size = storage.numel * bytesPerElement[storage.dtype];
    if (at + 8 + size > bytes.length) throw badFile(ctx.path, `storage '${key}' needs ${size} bytes from byte ${at + 8}, past the end of the file (${bytes.length} bytes): the file is truncated`);
    records.set(key, bytes.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  const unlisted = [...declared.keys()].find((k) => !records.has(k));
  if (unlisted !== undefined) throw badFile(ctx.path, `the legacy checkpoint's object uses storage '${unlisted}', which its storage list lacks: the file is truncated or corrupt`);
  if (at < bytes.length) {
    // torch.load stops after the last storage; another loader may read on.
    const rest = scanStream(bytes, at, ctx);
    if (rest.length) refuse(ctx, rest, `the ${bytes.length - at} bytes after the last storage`);
    throw badFile(ctx.path, `the legacy checkpoint has ${bytes.length - at} bytes after its last storage, which torch.load never reads: the file is corrupt or carries hidden data`);
  }
  const storages = new Map<string, PyStorage>();
  const load = (pid: PyValue): PyValue => {
    const id = legacyPersistentId(pid, ctx);
    if ('module' in id) return id.module;
    let s = storages.get(id.key);
    if (!s) storages.set(id.key, (s = new PyStorage(id.key, id.storage.dtype, id.storage.numel, records.get(id.key)!)));
    return s;
  };
  const machine = new PickleMachine(bytes, { allowlist: torchAllowlist(ctx.maxTensorElements), persistentLoad: load }, objectStart);
  return runChecked(ctx, machine, "the legacy checkpoint's object pickle");
}

/** The object a torch checkpoint holds, as inert values with tensors over the file's bytes. */
export function readTorchObject(bytes: Uint8Array, ctx: CheckpointContext): PyValue {
  if (isZip(bytes)) return readZipCheckpoint(bytes, ctx);
  if (bytes.length === 0) throw badFile(ctx.path, 'the file is empty');
  return readNonZip(bytes, ctx);
}

/** Keys of a dict whose values are all tensors, as a state_dict has. */
export function isTensorDict(v: PyValue | undefined): v is PyDict {
  if (!(v instanceof PyDict) || v.entries.size === 0) return false;
  for (const [k, x] of v.entries) if (typeof k !== 'string' || !(x instanceof PyTensor)) return false;
  return true;
}
