/**
 * What the fuzzer feeds: every input format the engine reads, each with seed files and the
 * loader entry point that takes bytes. A target passes an input when the loader returns a result
 * or throws a BackdoorLensError (a clear error); anything else is a crash.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { parseConfig } from '../../engine/config';
import { readNpz } from '../../engine/data/npz';
import { readIdx } from '../../engine/data/idx';
import { decodeImage } from '../../engine/data/image-folder';
import { onnxReader } from '../../engine/formats/onnx';
import { pytorchReader } from '../../engine/formats/pytorch';
import { safetensorsReader } from '../../engine/formats/safetensors';
import { encodeSafetensors, readSafetensors } from '../../engine/formats/safetensors-file';
import { readTorchObject } from '../../engine/formats/torch/checkpoint';
import { baseAllowlist } from '../../engine/formats/pickle/globals';
import { PickleError, PickleMachine } from '../../engine/formats/pickle/machine';
import { BackdoorLensError } from '../../engine/errors';
import { isZip } from '../../engine/io/zip';
import { GraphBuilder } from '../../engine/graph/builder';
import { readNpyImages } from '../../engine/data';
import { floatTensor } from '../../engine/tensor';
import { deepNesting, duplicateZipEntry, genericMutators, type Mutator } from './mutate';

const root = join(__dirname, '../..');
const file = (p: string) => new Uint8Array(readFileSync(join(root, p)));
/** Issue 15's hostile corpus (tools/fixtures/hostile.py): every shape of it seeds the campaign. */
const hostile = (...names: string[]) => names.map((n) => file(`fixtures/hostile/${n}`));
/**
 * Where fuzzed ONNX models claim to live: an empty folder, so that external-data references a
 * mutation makes resolve to nothing (and the refusal path is what gets exercised), never to files
 * of the working directory.
 */
const fuzzModelPath = join(mkdtempSync(join(tmpdir(), 'bl-fuzz-')), 'fuzz.onnx');

export interface FuzzTarget {
  format: string;
  seeds: () => Uint8Array[];
  /** Hostile seeds the loader must refuse with a clear error; mutated like the others. */
  refusedSeeds?: () => Uint8Array[];
  mutators: Mutator[];
  /** Parses the bytes; must return or throw BackdoorLensError. */
  load(bytes: Uint8Array): unknown | Promise<unknown>;
}

function tinyOnnx(): Uint8Array {
  const b = new GraphBuilder('tiny');
  const x = b.input('input', 'float32', ['N', 1, 4, 4]);
  const w = b.initializer('conv.weight', floatTensor([2, 1, 3, 3], Float32Array.from({ length: 18 }, (_, i) => i / 18)));
  const c = b.op('Conv', [x, w], { pads: [1, 1, 1, 1] });
  const g = b.op('GlobalAveragePool', [b.op('Relu', [c])]);
  b.output(b.op('Flatten', [g]), 'float32', ['N', 2]);
  return b.build().toBytes();
}

function tinyPng(): Uint8Array {
  const png = new PNG({ width: 4, height: 3 });
  for (let i = 0; i < png.data.length; i++) png.data[i] = (i * 37) % 256;
  return PNG.sync.write(png);
}

function tinyJpeg(): Uint8Array {
  const data = Buffer.alloc(8 * 8 * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 13) % 256;
  return jpeg.encode({ data, width: 8, height: 8 }, 90).data;
}

const config = JSON.stringify({ data: 'clean.npz', preprocess: { mean: [0.5], std: [0.25], resize: false }, methods: ['clp', 'bnp'], threshold: 3, limits: { maxModelBytes: 1000000 } });

/** The pixel limit a data set loader would be configured with for small classifier inputs. */
const imageMaxPixels = 2048 * 2048;

/** Pickles: a long run of opcodes that open marks, lists or tuples, inserted at a random place. */
const pickleNesting: Mutator = (input, r) => {
  const at = Math.floor(r() * input.length);
  const unit = ['(', ']', '(]', ')\x85', '}'][Math.floor(r() * 5)];
  const run = Buffer.from(unit.repeat(1000 + Math.floor(r() * 50_000)), 'latin1');
  return new Uint8Array(Buffer.concat([input.subarray(0, at), run, input.subarray(at)]));
};

/** A plain pickle through the interpreter with the base allowlist, as the torch reader runs one. */
function plainPickle(bytes: Uint8Array): unknown {
  const machine = new PickleMachine(bytes, { allowlist: baseAllowlist() });
  try {
    const value = machine.run();
    if (machine.uses.length) throw new BackdoorLensError('bad-file', `${machine.uses.length} globals outside the allowlist`);
    return value;
  } catch (e) {
    if (e instanceof PickleError) throw new BackdoorLensError('bad-file', e.message);
    throw e;
  }
}

/** The tiny CNN's weights as safetensors (sorted keys, as the reference writer orders them). */
function tinySafetensors(): Uint8Array {
  const bytes = file('fixtures/pickles/tiny-cnn.pt');
  const root = readTorchObject(bytes, { path: 'tiny-cnn.pt', sha256: '', maxTensorElements: 1e6 }) as import('../../engine/formats/pickle/values').PyDict;
  const entries = [...root.entries].map(([k, v]) => [k as string, (v as import('../../engine/formats/pickle/values').PyTensor).tensor] as const);
  return encodeSafetensors(entries.sort((a, b) => a[0].localeCompare(b[0])).map(([k, t]) => [k, t]));
}

export const targets: FuzzTarget[] = [
  {
    format: 'onnx',
    seeds: () => [tinyOnnx(), file('fixtures/fmnist/badnets/model.onnx'), ...hostile('loop-forever.onnx', 'loop-classifier.onnx', 'constant-of-shape-dynamic.onnx')],
    refusedSeeds: () => [
      ...hostile('ext-constant.onnx', 'ext-initializer-parent.onnx', 'ext-subgraph.onnx', 'ext-sparse.onnx', 'ext-inside.onnx', 'constant-of-shape-bomb.onnx', 'loop-bomb.onnx'),
    ],
    mutators: genericMutators,
    load: (bytes) => onnxReader.read(fuzzModelPath, bytes, {}),
  },
  {
    // torch.save checkpoints through the whole load path: zip or legacy, safe pickle, tensors,
    // template or module tree, graph.
    format: 'pytorch',
    // sequential-ceil.pt: ceil_mode pools, whose window rule mutated paddings and strides must not break.
    // convnext.pt, vit.pt, swin.pt: channels-last flows, LayerNorm, attention, windows and a functools.partial.
    seeds: () => [
      file('fixtures/pickles/tiny-cnn.pt'), file('fixtures/whole-models/sequential-layers.pt'), file('fixtures/whole-models/sequential-cnn-legacy.pt'), file('fixtures/whole-models/sequential-ceil.pt'),
      file('fixtures/whole-models/convnext.pt'), file('fixtures/whole-models/vit.pt'), file('fixtures/whole-models/swin.pt'),
    ],
    refusedSeeds: () => [
      file('fixtures/pickles/main-net.pt'),
      file('fixtures/pickles/whole-model-hook.pt'),
      ...hostile('osx-support.pt', 'pathlib-write-text.pt', 'gcd-attrgetter.pt', 'lone-upper-data-pkl.pt', 'upper-case-duplicate.pt', 'torchscript-members.pt', 'trailing-pickle.pt', 'legacy-tar.pt', 'legacy-tar-clean.pt', 'second-pickle.pkl', 'text.pt'),
    ],
    mutators: [...genericMutators, duplicateZipEntry],
    load: (bytes) => pytorchReader.read('fuzz.pt', bytes, {}),
  },
  {
    // The pickle interpreter: torch checkpoints of every dtype (protocols 2 and 4), plain data in protocols 0–5.
    format: 'pickle',
    seeds: () => [file('fixtures/pickles/dtypes.pt'), file('fixtures/pickles/dtypes-p4.pt'), ...[0, 1, 2, 3, 4, 5].map((p) => file(`fixtures/pickles/plain-p${p}.pkl`))],
    mutators: [...genericMutators, pickleNesting, duplicateZipEntry],
    load: (bytes) => (isZip(bytes) ? readTorchObject(bytes, { path: 'fuzz.pt', sha256: '', maxTensorElements: 2 ** 28 }) : plainPickle(bytes)),
  },
  {
    format: 'safetensors',
    seeds: () => [tinySafetensors()],
    mutators: [...genericMutators, deepNesting],
    load: (bytes) => (readSafetensors('fuzz.safetensors', bytes, 2 ** 28), safetensorsReader.read('fuzz.safetensors', bytes, {})),
  },
  {
    format: 'npz',
    seeds: () => [file('test/fixtures/data/rgb-uncompressed.npz'), file('test/fixtures/data/size-32.npz')],
    mutators: [...genericMutators, duplicateZipEntry],
    load: (bytes) => readNpz('fuzz.npz', bytes),
  },
  {
    format: 'npy',
    seeds: () => [file('test/fixtures/data/rgb-nchw-f4.npy'), file('test/fixtures/data/grey-nhw-u8.npy')],
    mutators: genericMutators,
    load: (bytes) => readNpyImages('fuzz.npy', bytes),
  },
  {
    format: 'idx',
    seeds: () => [file('test/fixtures/data/set-images-idx3-ubyte'), file('test/fixtures/data/gz-images-idx3-ubyte.gz')],
    mutators: genericMutators,
    load: (bytes) => readIdx('fuzz-images-idx3-ubyte', bytes),
  },
  {
    format: 'png',
    seeds: () => [tinyPng()],
    mutators: genericMutators,
    load: (bytes) => decodeImage('fuzz.png', bytes, imageMaxPixels),
  },
  {
    format: 'jpeg',
    seeds: () => [tinyJpeg()],
    mutators: genericMutators,
    load: (bytes) => decodeImage('fuzz.jpg', bytes, imageMaxPixels),
  },
  {
    format: 'config',
    seeds: () => [Buffer.from(config)],
    mutators: [...genericMutators, deepNesting],
    load: (bytes) => parseConfig('backdoor-lens.json', Buffer.from(bytes).toString('utf8')),
  },
];

