/**
 * Which pickle globals a weights file may name, and how dangerous the others are.
 *
 * The allowlist is what torch.save of a state_dict (and a BackdoorBench record, or a training
 * checkpoint's plain-data extras) needs; each entry has our own implementation of its effect on
 * plain data, so nothing is imported or called. Every other global stops the load, classified by
 * classify.ts: an error (BL030) unless it is a plausible model class (BL031).
 */
import { classifyGlobal, type Classification } from './classify';
import { PyBytes, PyDict, PyGlobal, PyNdArray, PyObject, PySet, PyTuple, isString, sequenceItems, type PyValue } from './values';

export type CallKind = 'reduce' | 'new' | 'obj' | 'inst';

export interface SafeGlobal {
  /** What calling it builds. Absent: the global is only ever a value (a dtype, a storage class), never called. */
  call?(args: readonly PyValue[], kind: CallKind): PyValue;
}

/** Thrown by a safe global's implementation when the pickle passes it arguments a real one would reject. */
export class GlobalArgumentError extends Error {}

/** Python 2 module names that Python 3's unpickler maps to their new homes (protocols 0–2). */
const python2Modules: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg', exceptions: 'builtins', cPickle: 'pickle', _winreg: 'winreg', thread: '_thread', commands: 'subprocess' };

export function normaliseModule(module: string): string {
  return python2Modules[module] ?? module;
}

/** Classifies a qualified name ('os.system', 'torch.FloatStorage', '__main__.Net') against the allowlist. */
export function classify(qualified: string, allowlist: ReadonlyMap<string, SafeGlobal>): Classification {
  return allowlist.has(qualified) ? { kind: 'safe', reason: 'on the allowlist' } : classifyGlobal(qualified);
}

function need(cond: boolean, what: string): asserts cond {
  if (!cond) throw new GlobalArgumentError(what);
}

function dictFromPairs(className: string, args: readonly PyValue[], kind: CallKind): PyDict {
  const d = new PyDict(className);
  if (kind === 'new' || args.length === 0) return d;
  const pairs = sequenceItems(args[0]);
  need(pairs !== undefined, `${className}() takes a sequence of pairs`);
  for (const p of pairs) {
    const kv = sequenceItems(p);
    need(kv !== undefined && kv.length === 2, `${className}() takes a sequence of pairs`);
    d.entries.set(kv[0], kv[1]);
  }
  return d;
}

function setFrom(args: readonly PyValue[], frozen: boolean): PySet {
  if (args.length === 0) return new PySet([], frozen);
  const items = sequenceItems(args[0]);
  need(items !== undefined, `${frozen ? 'frozenset' : 'set'}() takes a list or tuple here`);
  return new PySet([...items], frozen);
}

/** Python 3 pickles bytes at protocol 2 as _codecs.encode(text, 'latin1'). */
function codecsEncode(args: readonly PyValue[]): PyBytes {
  const [text, encoding] = args;
  need(isString(text), '_codecs.encode needs a str');
  const enc = encoding === undefined ? 'utf-8' : encoding;
  need(isString(enc), '_codecs.encode needs an encoding name');
  if (/^latin[-_]?1$|^iso[-_]?8859[-_]?1$/i.test(enc)) {
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      need(c < 256, '_codecs.encode: text is not latin-1');
      out[i] = c;
    }
    return new PyBytes(out);
  }
  need(/^utf[-_]?8$/i.test(enc), `_codecs.encode with encoding '${enc}'`);
  return new PyBytes(new Uint8Array(Buffer.from(text, 'utf8')));
}

const numpyScalarBytes: Record<string, number> = { i8: 8, i4: 4, i2: 2, i1: 1, u8: 8, u4: 4, u2: 2, u1: 1, f8: 8, f4: 4, b1: 1 };

/** numpy.core.multiarray.scalar(dtype, bytes): a numpy scalar, decoded when it is a plain number. */
function numpyScalar(args: readonly PyValue[]): PyValue {
  const [dtype, raw] = args;
  if (!(dtype instanceof PyNdArray) || !(raw instanceof PyBytes)) return new PyNdArray('scalar');
  const code = dtype.dtype.replace(/^[<|=]/, '');
  const size = numpyScalarBytes[code];
  if (size === undefined || raw.data.length !== size) return new PyNdArray('scalar');
  const view = new DataView(raw.data.buffer, raw.data.byteOffset, size);
  switch (code) {
    case 'i8': { const v = view.getBigInt64(0, true); return Number.isSafeInteger(Number(v)) ? Number(v) : v; }
    case 'u8': { const v = view.getBigUint64(0, true); return Number.isSafeInteger(Number(v)) ? Number(v) : v; }
    case 'i4': return view.getInt32(0, true);
    case 'u4': return view.getUint32(0, true);
    case 'i2': return view.getInt16(0, true);
    case 'u2': return view.getUint16(0, true);
    case 'i1': return view.getInt8(0);
    case 'u1': return view.getUint8(0);
    case 'f8': return view.getFloat64(0, true);
    case 'f4': return view.getFloat32(0, true);
    default: return view.getUint8(0) !== 0;
  }
}

function numpyDtype(args: readonly PyValue[]): PyNdArray {
  const d = new PyNdArray('dtype');
  if (isString(args[0])) d.dtype = args[0];
  return d;
}

const dtypeNames = ['float32', 'float', 'float64', 'double', 'float16', 'half', 'bfloat16', 'int64', 'long', 'int32', 'int', 'int16', 'short', 'int8', 'uint8', 'bool'];
const storageNames = ['FloatStorage', 'DoubleStorage', 'HalfStorage', 'BFloat16Storage', 'LongStorage', 'IntStorage', 'ShortStorage', 'CharStorage', 'ByteStorage', 'BoolStorage', 'UntypedStorage'];

/** Classes whose construction only stores data (no I/O, no callables run), as Python builds them. */
const inertDataTypes = [
  'argparse.Namespace', 'collections.Counter', 'collections.deque', 'builtins.slice', 'builtins.complex', 'builtins.range',
  'builtins.bytearray', 'builtins.object', 'datetime.datetime', 'datetime.date', 'datetime.time', 'datetime.timedelta',
  'datetime.timezone', 'decimal.Decimal', 'fractions.Fraction', 'uuid.UUID', 'pathlib.PosixPath', 'pathlib.WindowsPath',
  'pathlib.PurePosixPath', 'pathlib.PureWindowsPath',
];

/** The globals any checkpoint may use; the torch reader adds the tensor rebuild functions. */
export function baseAllowlist(): Map<string, SafeGlobal> {
  const m = new Map<string, SafeGlobal>();
  m.set('collections.OrderedDict', { call: (args, kind) => dictFromPairs('OrderedDict', args, kind) });
  m.set('builtins.set', { call: (args) => setFrom(args, false) });
  m.set('builtins.frozenset', { call: (args) => setFrom(args, true) });
  m.set('_codecs.encode', { call: (args) => codecsEncode(args) });
  m.set('torch.Size', { call: (args) => new PyTuple([...(sequenceItems(args[0]) ?? [])]) });
  m.set('torch.device', { call: (args) => args.map((a) => String(a)).join(':') });
  for (const d of dtypeNames) m.set(`torch.${d}`, {});
  for (const s of storageNames) {
    m.set(`torch.${s}`, {});
    m.set(`torch.cuda.${s}`, {});
  }
  for (const core of ['numpy.core.multiarray', 'numpy._core.multiarray']) {
    m.set(`${core}._reconstruct`, { call: () => new PyNdArray('array') });
    m.set(`${core}.scalar`, { call: (args) => numpyScalar(args) });
  }
  // Plain data a training checkpoint carries beside its weights (its arguments, dates, paths, counters):
  // inert objects here, whose state BUILD records; their methods are separate globals and not allowlisted.
  for (const q of inertDataTypes) m.set(q, { call: (args) => new PyObject(q, args) });
  // Protocol 0/1 pickles rebuild objects through copyreg._reconstructor(cls, object, state): object.__new__(cls).
  m.set('copyreg._reconstructor', { call: (args) => new PyObject(args[0] instanceof PyGlobal ? args[0].qualified : 'object', []) });
  m.set('numpy.ndarray', {});
  m.set('numpy.dtype', { call: (args) => numpyDtype(args) });
  return m;
}

/** BUILD on objects the allowlist made: attributes only, as Python's default __setstate__ would set. */
export function applyState(obj: PyValue, state: PyValue): void {
  if (obj instanceof PyDict) {
    obj.attributes = state;
  } else if (obj instanceof PyNdArray) {
    // ndarray state: (version, shape, dtype, is_fortran, data); dtype state describes byte order etc.
    const items = sequenceItems(state);
    if (obj.kind === 'array' && items && items.length >= 5) {
      obj.shape = (sequenceItems(items[1]) ?? []).filter((x): x is number => typeof x === 'number');
      if (items[2] instanceof PyNdArray) obj.dtype = items[2].dtype;
    }
  } else if (obj instanceof PyObject) {
    obj.state = state;
  }
}
