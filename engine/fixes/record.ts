/**
 * The fix record: what a fix measured, stored in the fixed ONNX model's metadata
 * (metadata_props 'backdoor-lens.fix'), so that any later scan of that file re-measures the same
 * triggers on the same held-out part of its data and shows before and after side by side.
 * Triggers are stored whatever their kind: typed arrays as base64, everything else as JSON.
 * A record read from a file is untrusted input: it is validated, and a trigger that does not
 * fit the data is reported as unstampable, never trusted.
 */
import type { ReversedTrigger } from '../analyses/reversal/trigger';
import type { OnnxModel } from '../graph/model';
import type { FixMeasurement } from './measure';
import type { FixOutcome } from './outcome';

export const FIX_RECORD_KEY = 'backdoor-lens.fix';
const RECORD_VERSION = 1;

export interface FixRecord {
  version: typeof RECORD_VERSION;
  method: string;
  outcome: FixOutcome;
  goal: number;
  budget: number;
  /** The held-out split of the fix's data (null: a separate held-out set was given). */
  split: { share: number; seed: number } | null;
  /** What the fix measured on its held-out images. */
  measurement: Pick<FixMeasurement, 'heldOut' | 'accuracy' | 'targets' | 'triggers' | 'trueAttack' | 'estimated'>;
  /** The triggers it measured, to measure again. */
  triggers: ReversedTrigger[];
}

type Encoded = unknown;

function encode(v: unknown): Encoded {
  if (v instanceof Float32Array) return { $f32: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  if (v instanceof Int32Array) return { $i32: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  if (v instanceof Uint8Array) return { $u8: Buffer.from(v).toString('base64') };
  if (Array.isArray(v)) return v.map(encode);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
  return v;
}

function typed<T>(b64: unknown, bytes: number, make: (buf: ArrayBuffer) => T): T {
  if (typeof b64 !== 'string') throw new Error('not base64');
  const raw = Buffer.from(b64, 'base64');
  if (raw.byteLength % bytes !== 0) throw new Error('truncated array');
  const buf = new ArrayBuffer(raw.byteLength);
  new Uint8Array(buf).set(raw);
  return make(buf);
}

function decode(v: Encoded, depth = 0): unknown {
  if (depth > 8) throw new Error('nested too deep');
  if (Array.isArray(v)) return v.map((x) => decode(x, depth + 1));
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('$f32' in o) return typed(o.$f32, 4, (b) => new Float32Array(b));
    if ('$i32' in o) return typed(o.$i32, 4, (b) => new Int32Array(b));
    if ('$u8' in o) return typed(o.$u8, 1, (b) => new Uint8Array(b));
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decode(x, depth + 1)]));
  }
  return v;
}

const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
const isShare = (x: unknown): x is number => typeof x === 'number' && x >= 0 && x <= 1;

function validTrigger(t: unknown): t is ReversedTrigger {
  if (!t || typeof t !== 'object') return false;
  const r = t as Record<string, unknown>;
  const range = r.range as { min?: unknown; max?: unknown } | undefined;
  return typeof r.kind === 'string' && isInt(r.target) && Array.isArray(r.sources) && r.sources.every(isInt)
    && !!range && Array.isArray(range.min) && Array.isArray(range.max) && [...range.min, ...range.max].every((x) => typeof x === 'number');
}

export function writeRecord(model: OnnxModel, record: Omit<FixRecord, 'version'>): void {
  const value = JSON.stringify(encode({ version: RECORD_VERSION, ...record }));
  const props = (model.proto.metadata_props ?? []).filter((p) => p.key !== FIX_RECORD_KEY);
  model.proto.metadata_props = [...props, { key: FIX_RECORD_KEY, value }];
}

/** The record of the fix that wrote this model; undefined when there is none or it is not one this version reads. */
export function readRecord(model: OnnxModel): FixRecord | undefined {
  const raw = model.proto.metadata_props?.find((p) => p.key === FIX_RECORD_KEY)?.value;
  if (!raw) return undefined;
  try {
    const r = decode(JSON.parse(raw)) as Partial<FixRecord>;
    if (r.version !== RECORD_VERSION || typeof r.method !== 'string' || !['removed', 'reduced', 'failed'].includes(r.outcome as string)) return undefined;
    if (!isShare(r.goal) || !isShare(r.budget) || !r.measurement || !Array.isArray(r.triggers) || !r.triggers.every(validTrigger)) return undefined;
    if (r.split !== null && !(r.split && isShare(r.split.share) && isInt(r.split.seed))) return undefined;
    return r as FixRecord;
  } catch {
    return undefined;
  }
}
