/**
 * Deterministic mutations of seed files: every input is a pure function of (seed, index), so a
 * failure found in a long campaign is reproduced by its index alone.
 */

/** The engine's mulberry32 picks the mutations. */
export { mulberry32 as rng } from '../../engine/analyses/stats/random';

export type Mutator = (input: Uint8Array, r: () => number) => Uint8Array;

const int = (r: () => number, n: number) => Math.floor(r() * n);

const flipBytes: Mutator = (input, r) => {
  const out = input.slice();
  const count = 1 + int(r, 8);
  for (let i = 0; i < count && out.length; i++) out[int(r, out.length)] ^= 1 << int(r, 8);
  return out;
};

const setBytes: Mutator = (input, r) => {
  const out = input.slice();
  const specials = [0x00, 0xff, 0x7f, 0x80, 0x01];
  const count = 1 + int(r, 4);
  for (let i = 0; i < count && out.length; i++) out[int(r, out.length)] = specials[int(r, specials.length)];
  return out;
};

const truncate: Mutator = (input, r) => input.slice(0, int(r, input.length));

const insertBytes: Mutator = (input, r) => {
  const at = int(r, input.length + 1);
  const extra = Uint8Array.from({ length: 1 + int(r, 16) }, () => int(r, 256));
  const out = new Uint8Array(input.length + extra.length);
  out.set(input.subarray(0, at));
  out.set(extra, at);
  out.set(input.subarray(at), at + extra.length);
  return out;
};

const duplicateChunk: Mutator = (input, r) => {
  if (input.length < 2) return input.slice();
  const start = int(r, input.length - 1);
  const len = 1 + int(r, Math.min(256, input.length - start));
  const at = int(r, input.length + 1);
  const out = new Uint8Array(input.length + len);
  out.set(input.subarray(0, at));
  out.set(input.subarray(start, start + len), at);
  out.set(input.subarray(at), at + len);
  return out;
};

/** Overwrites a 32-bit field (either endianness) with a huge or negative-looking value: lengths, sizes, dims. */
const inflateLength: Mutator = (input, r) => {
  const out = input.slice();
  if (out.length < 4) return out;
  const view = new DataView(out.buffer);
  const values = [0xffffffff, 0x7fffffff, 0x80000000, 0x10000000, input.length * 1000, 0x00ffffff];
  const at = int(r, out.length - 3);
  view.setUint32(at, values[int(r, values.length)], r() < 0.5);
  return out;
};

/** Protobuf varints and pickle/zip sizes: replace a byte run that looks like a small varint with a huge one. */
const inflateVarint: Mutator = (input, r) => {
  if (input.length === 0) return Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]);
  const at = int(r, input.length);
  const huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
  const out = new Uint8Array(input.length + huge.length - 1);
  out.set(input.subarray(0, at));
  out.set(huge, at);
  out.set(input.subarray(at + 1), at + huge.length);
  return out;
};

export const genericMutators: Mutator[] = [flipBytes, setBytes, truncate, insertBytes, duplicateChunk, inflateLength, inflateVarint];

/** Zip archives (.npz, torch checkpoints): also duplicate the central directory records. */
export const duplicateZipEntry: Mutator = (input, r) => {
  const sig = [0x50, 0x4b, 0x01, 0x02];
  const starts: number[] = [];
  for (let i = 0; i + 4 <= input.length; i++) if (sig.every((b, k) => input[i + k] === b)) starts.push(i);
  if (starts.length === 0) return flipBytes(input, r);
  const start = starts[int(r, starts.length)];
  const end = starts.find((s) => s > start) ?? Math.min(input.length, start + 46 + 64);
  const record = input.subarray(start, end);
  const out = new Uint8Array(input.length + record.length);
  out.set(input.subarray(0, end));
  out.set(record, end);
  out.set(input.subarray(end), end + record.length);
  return out;
};

/** JSON: nest a value thousands of levels deep, or replace a number with an enormous one. */
export const deepNesting: Mutator = (input, r) => {
  const text = Buffer.from(input).toString('utf8');
  const depth = 1000 + int(r, 100000);
  if (r() < 0.5) return Buffer.from(text.replace(/:\s*/, `: ${'['.repeat(depth)}1${']'.repeat(depth)}, "x":`));
  return Buffer.from(text.replace(/\d+(\.\d+)?/, '1e309999'));
};

export function mutate(seedFile: Uint8Array, mutators: Mutator[], r: () => number): Uint8Array {
  let out = seedFile;
  const rounds = 1 + int(r, 3);
  for (let i = 0; i < rounds; i++) out = mutators[int(r, mutators.length)](out, r);
  return out;
}
