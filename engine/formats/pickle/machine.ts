/**
 * A pickle interpreter that never imports or calls anything (protocols 0–5).
 *
 * It runs the opcode stream like Python's Unpickler, but globals are only names: the allowlisted
 * ones have our own implementation of their effect on plain data, and every other one is recorded
 * (GlobalUse) together with what the pickle would have done with it, then carried on the stack as an
 * inert value. Running to the end rather than stopping at the first unknown global lets us see
 * through hiding — a global stored in the memo and fetched later, a call whose callable is itself
 * the result of a call, getattr(__import__('os'), 'system'), STACK_GLOBAL names taken from memoised
 * strings — and report what the file would really run.
 *
 * Every size is bounded: the stack, the memo, mark nesting, integer widths, and the number of
 * values made, so a hostile pickle cannot make us allocate much more than its own length.
 */
import { applyState, classify, GlobalArgumentError, normaliseModule, type CallKind, type SafeGlobal } from './globals';
import { describe, PyBytes, PyDict, PyGlobal, PyList, PyModule, PyObject, PySet, PyTuple, type PyValue } from './values';

export interface PickleLimits {
  /** Values on the stack between two marks. */
  maxStack: number;
  maxMemo: number;
  /** Mark nesting depth. */
  maxMarks: number;
  /** Bytes in one integer (LONG1/LONG4/text). */
  maxIntBytes: number;
  /**
   * Containers, strings and objects made in all. By default 65 536 plus one per two bytes of the
   * pickle (real checkpoints make about one per ten bytes), capped at 4 M: a JS object costs ~100
   * bytes, so this keeps a hostile stream of one-byte EMPTY_LISTs to a bounded multiple of its size.
   */
  maxValues: number;
}

export const defaultPickleLimits: PickleLimits = { maxStack: 1 << 22, maxMemo: 1 << 22, maxMarks: 10_000, maxIntBytes: 1024, maxValues: 4_000_000 };

/** A global outside the allowlist that the pickle names, and what it would do with it. */
export interface GlobalUse {
  qualified: string;
  /** dangerous: loading would call or reach it (BL030); model-class: a class a model file may name (BL031). */
  danger: 'dangerous' | 'model-class';
  /** Why it was classified so ("a standard-library name (pydoc) that a weights file never needs"). */
  reason: string;
  /** How the pickle reached it: 'GLOBAL', 'STACK_GLOBAL', "builtins.getattr(<module os>, 'system')", … */
  via: string;
  offset: number;
  /** The first call made on it, rendered like Python ('os.system('touch x')'), if it is called. */
  call?: string;
  callOffset?: number;
  /** The opcode that makes the call: REDUCE, NEWOBJ, OBJ or INST. */
  callOpcode?: string;
}

export class PickleError extends Error {
  constructor(
    readonly reason: string,
    readonly offset: number,
  ) {
    super(`${reason} (at pickle byte ${offset})`);
  }
}

export interface PickleOptions {
  allowlist: ReadonlyMap<string, SafeGlobal>;
  /** Resolves BINPERSID / PERSID ids (torch storages); absent: persistent ids are an error. */
  persistentLoad?(pid: PyValue, offset: number): PyValue;
  limits?: Partial<PickleLimits>;
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

export class PickleMachine {
  readonly uses: GlobalUse[] = [];
  protocol = 0;
  private readonly usesByName = new Map<string, GlobalUse>();
  private readonly limits: PickleLimits;
  private readonly view: DataView;
  private pos: number;
  private stack: PyValue[] = [];
  private readonly metastack: PyValue[][] = [];
  private readonly memo = new Map<number, PyValue>();
  private values = 0;
  private opStart = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly options: PickleOptions,
    start = 0,
  ) {
    const byLength = Math.min(defaultPickleLimits.maxValues, 65_536 + Math.floor((bytes.length - start) / 2));
    this.limits = { ...defaultPickleLimits, maxValues: byLength, ...options.limits };
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }

  /** Where the next pickle in the same buffer starts, after run(). */
  get end(): number {
    return this.pos;
  }

  /** Whether any use would run code, touch files or import more. */
  get dangerous(): boolean {
    return this.uses.some((u) => u.danger === 'dangerous');
  }

  private fail(reason: string): never {
    throw new PickleError(reason, this.opStart);
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.bytes.length) this.fail(`the pickle is truncated: it needs ${n} more bytes at byte ${this.pos} of ${this.bytes.length}`);
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++];
  }
  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.bytes.length)) this.fail(`a length of ${v} bytes is longer than the pickle`);
    return Number(v);
  }
  private take(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  /** A protocol-0 text argument: bytes up to the next newline. */
  private line(): string {
    const nl = this.bytes.indexOf(0x0a, this.pos);
    if (nl < 0) this.fail('the pickle is truncated: a text argument has no end of line');
    const s = latin1.decode(this.bytes.subarray(this.pos, nl));
    this.pos = nl + 1;
    return s;
  }

  private count(): void {
    if (++this.values > this.limits.maxValues) this.fail(`the pickle makes more than ${this.limits.maxValues} values, over the limit`);
  }

  private push(v: PyValue): void {
    if (this.stack.length >= this.limits.maxStack) this.fail(`the pickle stack grows past ${this.limits.maxStack} values`);
    this.stack.push(v);
  }

  private pop(): PyValue {
    if (this.stack.length === 0) this.fail('the pickle pops from an empty stack');
    return this.stack.pop()!;
  }

  private top(): PyValue {
    if (this.stack.length === 0) this.fail('the pickle reads the top of an empty stack');
    return this.stack[this.stack.length - 1];
  }

  private popMark(): PyValue[] {
    const items = this.stack;
    const prev = this.metastack.pop();
    if (!prev) this.fail('the pickle closes a mark it never opened');
    this.stack = prev;
    return items;
  }

  private str(data: Uint8Array): string {
    this.count();
    return utf8.decode(data);
  }

  private setMemo(key: number, v: PyValue): void {
    if (!this.memo.has(key) && this.memo.size >= this.limits.maxMemo) this.fail(`the pickle memo grows past ${this.limits.maxMemo} entries`);
    this.memo.set(key, v);
  }

  private getMemo(key: number): PyValue {
    if (!this.memo.has(key)) this.fail(`the pickle reads memo entry ${key}, which was never stored`);
    return this.memo.get(key)!;
  }

  private int(text: string): number | bigint {
    const t = text.trim().replace(/L$/, '');
    if (!/^[-+]?\d+$/.test(t)) this.fail(`'${t.slice(0, 40)}' is not an integer`);
    if (t.length > 2.5 * this.limits.maxIntBytes) this.fail(`an integer of ${t.length} digits is over the limit`);
    const b = BigInt(t);
    return Number.isSafeInteger(Number(b)) ? Number(b) : b;
  }

  private long(n: number): number | bigint {
    if (n > this.limits.maxIntBytes) this.fail(`an integer of ${n} bytes is over the limit of ${this.limits.maxIntBytes}`);
    const data = this.take(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[i]);
    if (data[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return Number.isSafeInteger(Number(v)) ? Number(v) : v;
  }

  /** Records a global the allowlist does not cover; the first sighting of each name is kept. */
  private note(qualified: string, via: string): void {
    const c = classify(qualified, this.options.allowlist);
    if (c.kind === 'safe' || this.usesByName.has(qualified)) return;
    const use: GlobalUse = { qualified, danger: c.kind, reason: c.reason, via, offset: this.opStart };
    this.usesByName.set(qualified, use);
    this.uses.push(use);
  }

  private global(module: string, name: string, via: string): PyGlobal {
    this.count();
    const g = new PyGlobal(normaliseModule(module), name);
    this.note(g.qualified, via);
    return g;
  }

  private noteCall(qualified: string, args: readonly PyValue[], kind: CallKind): void {
    const use = this.usesByName.get(qualified);
    if (use && use.call === undefined) {
      use.call = `${qualified}(${args.map((a) => describe(a)).join(', ')})`.slice(0, 300);
      use.callOffset = this.opStart;
      use.callOpcode = { reduce: 'REDUCE', new: 'NEWOBJ', obj: 'OBJ', inst: 'INST' }[kind];
    }
  }

  /** getattr(target, name) as the pickle would evaluate it: a new name to classify. */
  private attribute(target: PyValue, name: string): PyGlobal {
    this.count();
    let g: PyGlobal;
    if (target instanceof PyModule) g = new PyGlobal(target.name, name);
    else if (target instanceof PyGlobal) g = new PyGlobal(target.module, `${target.name}.${name}`);
    else if (target instanceof PyObject) g = new PyGlobal(`${target.origin}()`, name);
    else g = new PyGlobal(target === null ? 'None' : typeof target === 'object' ? target.constructor.name : typeof target, name);
    this.note(g.qualified, `builtins.getattr(${describe(target)}, '${name}')`);
    return g;
  }

  private call(fn: PyValue, args: readonly PyValue[], kind: CallKind): PyValue {
    this.count();
    if (fn instanceof PyGlobal) {
      const q = fn.qualified;
      const safe = this.options.allowlist.get(q);
      if (safe) {
        if (!safe.call) this.fail(`the pickle calls ${q}, which a checkpoint only uses as a value`);
        try {
          return safe.call(args, kind);
        } catch (e) {
          if (e instanceof GlobalArgumentError) this.fail(`${q}: ${e.message}`);
          throw e;
        }
      }
      this.noteCall(q, args, kind);
      // Follow the indirections that turn strings into code, so the real target gets named.
      if (q === 'builtins.getattr' && args.length >= 2 && typeof args[1] === 'string') return this.attribute(args[0], args[1]);
      if ((q === 'builtins.__import__' || q === 'importlib.import_module' || q === 'importlib.__import__') && typeof args[0] === 'string') {
        this.note(args[0], `${q}('${args[0]}')`);
        return new PyModule(args[0]);
      }
      return new PyObject(q, args);
    }
    if (fn instanceof PyObject) return new PyObject(`${fn.origin}()`, args);
    if (fn instanceof PyModule) return new PyObject(`<module ${fn.name}>`, args);
    this.fail(`the pickle calls ${describe(fn)}, which cannot be called`);
  }

  private tupleArgs(v: PyValue, what: string): readonly PyValue[] {
    if (v instanceof PyTuple) return v.items;
    if (v instanceof PyList) return v.items;
    this.fail(`${what} needs a tuple of arguments, got ${describe(v)}`);
  }

  private appendTo(target: PyValue, items: readonly PyValue[]): void {
    if (target instanceof PyList) for (const x of items) target.items.push(x);
    else if (!(target instanceof PyObject)) this.fail(`the pickle appends to ${describe(target)}, which is not a list`);
  }

  private setItems(target: PyValue, items: readonly PyValue[]): void {
    if (items.length % 2 !== 0) this.fail('the pickle sets a dict item without a value');
    if (target instanceof PyDict) for (let i = 0; i < items.length; i += 2) target.entries.set(items[i], items[i + 1]);
    else if (!(target instanceof PyObject)) this.fail(`the pickle sets items on ${describe(target)}, which is not a dict`);
  }

  /** Runs one pickle up to its STOP and returns the value it builds. */
  run(): PyValue {
    for (;;) {
      this.opStart = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: // PROTO
          this.protocol = this.u8();
          if (this.protocol > 5) this.fail(`pickle protocol ${this.protocol} is newer than 5`);
          break;
        case 0x95: // FRAME
          this.u64();
          break;
        case 0x2e: // STOP
          if (this.metastack.length) this.fail('the pickle stops inside an open mark');
          return this.pop();
        case 0x28: // MARK
          if (this.metastack.length >= this.limits.maxMarks) this.fail(`the pickle nests marks deeper than ${this.limits.maxMarks}`);
          this.metastack.push(this.stack);
          this.stack = [];
          break;
        case 0x30: // POP
          if (this.stack.length === 0 && this.metastack.length) this.popMark();
          else this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.top());
          break;

        // Numbers and constants.
        case 0x4e: this.push(null); break; // NONE
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x4b: this.push(this.u8()); break; // BININT1
        case 0x4d: this.push(this.u16()); break; // BININT2
        case 0x4a: this.push(this.i32()); break; // BININT
        case 0x8a: this.push(this.long(this.u8())); break; // LONG1
        case 0x8b: { // LONG4
          const n = this.i32();
          if (n < 0) this.fail('LONG4 with a negative length');
          this.push(this.long(n));
          break;
        }
        case 0x49: { // INT (text); '00'/'01' are protocol 0's False/True
          const t = this.line();
          this.push(t === '00' ? false : t === '01' ? true : this.int(t));
          break;
        }
        case 0x4c: this.push(this.int(this.line())); break; // LONG (text)
        case 0x46: { // FLOAT (text)
          const v = Number(this.line());
          if (Number.isNaN(v)) this.fail('FLOAT is not a number');
          this.push(v);
          break;
        }
        case 0x47: { // BINFLOAT, big-endian
          this.need(8);
          this.push(this.view.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        }

        // Strings and bytes. torch.load decodes Python 2 strings as UTF-8.
        case 0x58: this.push(this.str(this.take(this.u32()))); break; // BINUNICODE
        case 0x8c: this.push(this.str(this.take(this.u8()))); break; // SHORT_BINUNICODE
        case 0x8d: this.push(this.str(this.take(this.u64()))); break; // BINUNICODE8
        case 0x56: this.count(); this.push(decodeRawUnicodeEscape(this.line())); break; // UNICODE
        case 0x53: this.count(); this.push(decodeStringRepr(this.line(), (r) => this.fail(r))); break; // STRING
        case 0x54: { // BINSTRING
          const n = this.i32();
          if (n < 0) this.fail('BINSTRING with a negative length');
          this.push(this.str(this.take(n)));
          break;
        }
        case 0x55: this.push(this.str(this.take(this.u8()))); break; // SHORT_BINSTRING
        case 0x42: this.count(); this.push(new PyBytes(this.take(this.u32()))); break; // BINBYTES
        case 0x43: this.count(); this.push(new PyBytes(this.take(this.u8()))); break; // SHORT_BINBYTES
        case 0x8e: this.count(); this.push(new PyBytes(this.take(this.u64()))); break; // BINBYTES8
        case 0x96: this.count(); this.push(new PyBytes(this.take(this.u64()))); break; // BYTEARRAY8
        case 0x97: case 0x98: // NEXT_BUFFER, READONLY_BUFFER
          this.fail('the pickle uses out-of-band buffers (protocol 5), which a checkpoint file cannot carry');

        // Containers.
        case 0x29: this.count(); this.push(new PyTuple([])); break; // EMPTY_TUPLE
        case 0x85: this.count(); this.push(new PyTuple([this.pop()])); break; // TUPLE1
        case 0x86: { this.count(); const b = this.pop(), a = this.pop(); this.push(new PyTuple([a, b])); break; } // TUPLE2
        case 0x87: { this.count(); const c = this.pop(), b = this.pop(), a = this.pop(); this.push(new PyTuple([a, b, c])); break; } // TUPLE3
        case 0x74: { this.count(); const items = this.popMark(); this.push(new PyTuple(items)); break; } // TUPLE
        case 0x5d: this.count(); this.push(new PyList()); break; // EMPTY_LIST
        case 0x6c: { this.count(); const items = this.popMark(); this.push(new PyList(items)); break; } // LIST
        case 0x61: { const x = this.pop(); this.appendTo(this.top(), [x]); break; } // APPEND
        case 0x65: { const items = this.popMark(); this.appendTo(this.top(), items); break; } // APPENDS
        case 0x7d: this.count(); this.push(new PyDict()); break; // EMPTY_DICT
        case 0x64: { // DICT
          this.count();
          const items = this.popMark();
          const d = new PyDict();
          this.setItems(d, items);
          this.push(d);
          break;
        }
        case 0x73: { const v = this.pop(), k = this.pop(); this.setItems(this.top(), [k, v]); break; } // SETITEM
        case 0x75: { const items = this.popMark(); this.setItems(this.top(), items); break; } // SETITEMS
        case 0x8f: this.count(); this.push(new PySet([], false)); break; // EMPTY_SET
        case 0x90: { // ADDITEMS
          const items = this.popMark();
          const s = this.top();
          if (s instanceof PySet) s.items.push(...items);
          else if (!(s instanceof PyObject)) this.fail(`the pickle adds set items to ${describe(s)}`);
          break;
        }
        case 0x91: { this.count(); const items = this.popMark(); this.push(new PySet(items, true)); break; } // FROZENSET

        // Memo.
        case 0x70: this.setMemo(Number(this.int(this.line())), this.top()); break; // PUT
        case 0x71: this.setMemo(this.u8(), this.top()); break; // BINPUT
        case 0x72: this.setMemo(this.u32(), this.top()); break; // LONG_BINPUT
        case 0x94: this.setMemo(this.memo.size, this.top()); break; // MEMOIZE
        case 0x67: this.push(this.getMemo(Number(this.int(this.line())))); break; // GET
        case 0x68: this.push(this.getMemo(this.u8())); break; // BINGET
        case 0x6a: this.push(this.getMemo(this.u32())); break; // LONG_BINGET

        // Globals, calls and objects: where a real unpickler would import and run code.
        case 0x63: { // GLOBAL
          const module = this.line(), name = this.line();
          this.push(this.global(module, name, 'GLOBAL'));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop(), module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') {
            // Python requires str here; a computed name means a call ran first to build it.
            const q = `${describe(module)}.${describe(name)}`;
            this.usesByName.set(q, { qualified: q, danger: 'dangerous', reason: 'its name is computed while loading', via: 'STACK_GLOBAL with a name computed while loading', offset: this.opStart });
            this.uses.push(this.usesByName.get(q)!);
            this.push(new PyObject(q, []));
          } else this.push(this.global(module, name, 'STACK_GLOBAL'));
          break;
        }
        case 0x82: case 0x83: case 0x84: { // EXT1, EXT2, EXT4: the copyreg extension registry
          const code = op === 0x82 ? this.u8() : op === 0x83 ? this.u16() : this.i32();
          this.push(this.global('copyreg', `_extension_registry[${code}]`, `EXT code ${code}`));
          break;
        }
        case 0x69: { // INST
          const module = this.line(), name = this.line();
          const cls = this.global(module, name, 'INST');
          this.push(this.call(cls, this.popMark(), 'inst'));
          break;
        }
        case 0x6f: { // OBJ
          const items = this.popMark();
          if (items.length === 0) this.fail('OBJ without a class');
          this.push(this.call(items[0], items.slice(1), 'obj'));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop(), fn = this.pop();
          this.push(this.call(fn, this.tupleArgs(args, 'REDUCE'), 'reduce'));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.pop(), cls = this.pop();
          this.push(this.call(cls, this.tupleArgs(args, 'NEWOBJ'), 'new'));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.pop(), args = this.pop(), cls = this.pop();
          const extra = kwargs instanceof PyDict && kwargs.entries.size ? [kwargs] : [];
          this.push(this.call(cls, [...this.tupleArgs(args, 'NEWOBJ_EX'), ...extra], 'new'));
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop();
          applyState(this.top(), state);
          break;
        }
        case 0x51: { // BINPERSID
          const pid = this.pop();
          this.push(this.persistent(pid));
          break;
        }
        case 0x50: this.count(); this.push(this.persistent(this.line())); break; // PERSID
        default:
          this.fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }

  private persistent(pid: PyValue): PyValue {
    if (!this.options.persistentLoad) this.fail('the pickle refers to external data by persistent id, which only a torch checkpoint provides');
    try {
      return this.options.persistentLoad(pid, this.opStart);
    } catch (e) {
      if (e instanceof GlobalArgumentError) this.fail(e.message);
      throw e;
    }
  }
}

/** Python's 'raw-unicode-escape': \uXXXX and \UXXXXXXXX escapes, everything else latin-1. */
function decodeRawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, a: string | undefined, b: string | undefined) => {
    const cp = parseInt(a ?? b!, 16);
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : '\ufffd';
  });
}

/** A protocol-0 STRING argument: a quoted Python 2 str repr with backslash escapes. */
function decodeStringRepr(s: string, fail: (reason: string) => never): string {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) fail('STRING argument is not quoted');
  const body = s.slice(1, -1);
  const bytes: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c !== 0x5c) {
      bytes.push(c & 0xff);
      continue;
    }
    const e = body[++i];
    const simple: Record<string, number> = { n: 10, t: 9, r: 13, '\\': 92, "'": 39, '"': 34, a: 7, b: 8, f: 12, v: 11 };
    if (e in simple) bytes.push(simple[e]);
    else if (e === 'x') {
      bytes.push(parseInt(body.slice(i + 1, i + 3), 16) & 0xff);
      i += 2;
    } else if (e >= '0' && e <= '7') {
      const m = /^[0-7]{1,3}/.exec(body.slice(i))![0];
      bytes.push(parseInt(m, 8) & 0xff);
      i += m.length - 1;
    } else bytes.push(92, e === undefined ? 0 : e.charCodeAt(0) & 0xff);
  }
  return utf8.decode(Uint8Array.from(bytes));
}
