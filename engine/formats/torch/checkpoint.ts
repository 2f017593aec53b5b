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
import { looksLikeText } from '../text';
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
 * pickle. Every pickle in them is scanned; a dangerous one is refused with its findings, and a
 * clean one with a message that says so.
 */
function scanLegacy(bytes: Uint8Array, ctx: CheckpointContext): never {
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
  // Everything after the first pickle: more pickles a second pickle.load would run, or legacy storages.
  const uses = [...first.uses, ...scanStream(bytes, first.end, ctx)];
  if (uses.length) refuse(ctx, uses, 'the pickle stream');
  if (magic !== LEGACY_MAGIC) {
    throw new BackdoorLensError('unsupported-model', 'is a plain pickle, not a torch.save checkpoint or safetensors file; nothing unsafe was found in its pickles, but Backdoor Lens reads only torch.save (zip) checkpoints, safetensors and ONNX', { file: ctx.path });
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
