import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BackdoorLensError, loadDataset, loadModel, predict, Runtime } from '../../engine';
import { PyDict, PyTensor } from '../../engine/formats/pickle/values';
import { readTorchObject } from '../../engine/formats/torch/checkpoint';
import { OnnxModel } from '../../engine/graph/model';
import { bfloat16ToFloat, halfToFloat, type Tensor } from '../../engine/tensor';
import { imageInputOf } from '../../engine/evaluate';
import { cli, fmnist, tempDir } from '../helpers';
import { maxAbsDiff, patchBytes, pickleBytes, picklesDir, storedZip, templatesDir, zipEntries } from './helpers';

const ctx = (path: string) => ({ path, sha256: '0'.repeat(64), maxTensorElements: 2 ** 28 });

function values(t: Tensor): (number | string)[] {
  const d = t.data;
  if (d instanceof BigInt64Array) return Array.from(d, String);
  if (t.dtype === 'float16') return Array.from(d as Uint16Array, halfToFloat);
  if (t.dtype === 'bfloat16') return Array.from(d as Uint16Array, bfloat16ToFloat);
  return Array.from(d as ArrayLike<number>, Number);
}

describe('torch.save zip checkpoints: dtypes and views', () => {
  const expected: Record<string, { dtype: string; dims: number[]; values: (number | string)[] }> = JSON.parse(readFileSync(join(picklesDir, 'dtypes.json'), 'utf8'));
  for (const file of ['dtypes.pt', 'dtypes-p4.pt']) {
    test(`${file}: every tensor has PyTorch's dtype, shape and values (strided, offset and shared views included)`, () => {
      const path = join(picklesDir, file);
      const root = readTorchObject(readFileSync(path), ctx(path));
      assert.ok(root instanceof PyDict);
      assert.deepEqual([...root.entries.keys()], Object.keys(expected));
      for (const [key, want] of Object.entries(expected)) {
        const t: Tensor = (root.get(key) as PyTensor).tensor;
        assert.equal(t.dtype, want.dtype === 'bool' ? 'bool' : want.dtype, key);
        assert.deepEqual(t.dims, want.dims, key);
        const got = values(t);
        assert.equal(got.length, want.values.length, key);
        got.forEach((v, i) => (typeof v === 'string' ? assert.equal(v, want.values[i], key) : assert.ok(Math.abs(v - (want.values[i] as number)) <= 1e-6 * Math.max(1, Math.abs(v)), `${key}[${i}]: ${v} vs ${want.values[i]}`)));
      }
    });
  }

  test('contiguous tensors in torch.save’s aligned records are views of the file bytes, not copies', () => {
    const path = join(templatesDir, 'resnet18-imagenet.pt');
    const bytes = readFileSync(path);
    const root = readTorchObject(bytes, ctx(path)) as PyDict;
    for (const [key, v] of root.entries) assert.equal((v as PyTensor).tensor.data.buffer, bytes.buffer, String(key));
  });
});

describe('torch._utils._rebuild_tensor_v3 (dtype given apart from an untyped storage)', () => {
  test('reinterprets the byte storage as the named dtype', () => {
    const values = Float32Array.of(1, 2, 3, 4, 5, 6);
    const str = (s: string) => pickleBytes('X', [s.length, 0, 0, 0], s);
    const pkl = pickleBytes(
      '\x80\x02}', str('w'), 'ctorch._utils\n_rebuild_tensor_v3\n((', str('storage'), 'ctorch\nUntypedStorage\n', str('0'), str('cpu'), 'K\x18tQ',
      'K\x00K\x02K\x03\x86K\x03K\x01\x86\x89ccollections\nOrderedDict\n)Rctorch\nfloat32\ntRs.',
    );
    const zip = storedZip([['archive/data.pkl', pkl], ['archive/data/0', new Uint8Array(values.buffer)], ['archive/version', pickleBytes('3\n')]]);
    const root = readTorchObject(zip, ctx('v3.pt')) as PyDict;
    const t = (root.get('w') as PyTensor).tensor;
    assert.equal(t.dtype, 'float32');
    assert.deepEqual(t.dims, [2, 3]);
    assert.deepEqual(Array.from(t.data as Float32Array), [1, 2, 3, 4, 5, 6]);
  });
});

describe('the fixture SmallCNN state_dict builds the same model as its ONNX export', () => {
  test('model.pt gives the ONNX model’s predictions on test.npz, with state_dict keys as layer names', async () => {
    const fromPt = await loadModel(join(fmnist.badnets, 'model.pt'));
    const fromOnnx = await loadModel(join(fmnist.badnets, 'model.onnx'));
    assert.equal(fromPt.format, 'pytorch');
    assert.equal(fromPt.architecture, 'cnn');
    assert.equal(fromPt.numClasses, 10);
    assert.deepEqual(fromPt.onnx.inputs()[0].dims, ['N', 1, 28, 28]);
    const bn = fromPt.onnx.nodes.filter((n) => n.op_type === 'BatchNormalization').map((n) => fromPt.onnx.layerName(n));
    assert.deepEqual(bn, ['bn1', 'bn2', 'bn3']);
    assert.deepEqual([...fromPt.sourceKeys!.values()].sort(), ['bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'bn1.weight', 'bn2.bias', 'bn2.running_mean', 'bn2.running_var', 'bn2.weight', 'bn3.bias', 'bn3.running_mean', 'bn3.running_var', 'bn3.weight', 'conv1.bias', 'conv1.weight', 'conv2.bias', 'conv2.weight', 'conv3.bias', 'conv3.weight', 'fc.bias', 'fc.weight']);
    const runtime = new Runtime({ threads: 1 });
    try {
      const a = await predict(fromPt.onnx, loadDataset({ path: join(fmnist.data, 'test.npz') }, imageInputOf(fromPt.onnx)), runtime);
      const b = await predict(fromOnnx.onnx, loadDataset({ path: join(fmnist.data, 'test.npz') }, imageInputOf(fromOnnx.onnx)), runtime);
      assert.equal(a.labels.length, 1000);
      assert.deepEqual(Array.from(a.labels), Array.from(b.labels));
      assert.ok(maxAbsDiff(a.logits, b.logits) <= 1e-4, `max |Δlogit| = ${maxAbsDiff(a.logits, b.logits)}`);
    } finally {
      await runtime.dispose();
    }
  });
});

describe('broken checkpoints: one clear error each, naming the file (CLI exit 2)', () => {
  const dir = tempDir();
  const clean = zipEntries(join(picklesDir, 'clean.pt'));
  const pkl = clean.find(([n]) => n.endsWith('data.pkl'))![1];
  const write = (name: string, bytes: Uint8Array) => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const withPickle = (data: Uint8Array) => storedZip(clean.map(([n, d]) => [n, n.endsWith('data.pkl') ? data : d]));

  async function expectError(path: string, code: BackdoorLensError['code'], pattern: RegExp, exit = 2) {
    await assert.rejects(loadModel(path), (e: unknown) => e instanceof BackdoorLensError && e.code === code && pattern.test(e.message) && e.userMessage.startsWith(path));
    const r = await cli('info', path);
    assert.equal(r.exitCode, exit, r.stderr);
    assert.ok(r.stderr.includes(path) && pattern.test(r.stderr), r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack');
  }

  test('a truncated zip', async () => {
    const full = readFileSync(join(templatesDir, 'resnet50-cifar.pt'));
    await expectError(write('truncated.pt', full.subarray(0, full.length >> 1)), 'bad-file', /truncated/);
  });

  test('a storage record shorter than its declared size', async () => {
    const short = storedZip(clean.map(([n, d]) => [n, n.endsWith('/data/0') ? d.subarray(0, d.length - 4) : d]));
    await expectError(write('short-storage.pt', short), 'bad-file', /storage '0' declares 6 float32 elements \(24 bytes\) but its record .* holds 20 bytes/);
  });

  test('a storage of a dtype Backdoor Lens does not read', async () => {
    await expectError(write('complex.pt', withPickle(patchBytes(pkl, 'torch\nFloatStorage', 'torch\nComplexFloatStorage'))), 'bad-file', /ComplexFloatStorage, a dtype Backdoor Lens does not read/);
  });

  test('tensor dims whose product exceeds the storage (and the file)', async () => {
    // fc.weight is (2, 3) with stride (3, 1): BININT1 2, BININT1 3, TUPLE2.
    const big = patchBytes(pkl, 'K\x02K\x03\x86', 'J\x00\x10\x00\x00J\x00\x10\x00\x00\x86');
    await expectError(write('big-dims.pt', withPickle(big)), 'bad-file', /size \[4096, 4096\] needs 67108864 bytes but its storage record holds 24/);
  });

  test('tensor dims past the element limit stop before any allocation', async () => {
    const huge = patchBytes(pkl, 'K\x02K\x03\x86', 'J\x00\x00\x01\x00J\x00\x00\x01\x00\x86');
    await expectError(write('huge-dims.pt', withPickle(huge)), 'bad-file', /more than 268435456 elements/);
  });

  test('a view reading past the end of its storage', async () => {
    // storage offset 0 → 1 with size (2, 3): the last element read is 6, the storage holds 6.
    const shifted = patchBytes(pkl, 'Q K\x00K\x02K\x03\x86'.replace(' ', ''), 'QK\x01K\x02K\x03\x86');
    await expectError(write('past-end.pt', withPickle(shifted)), 'bad-file', /reads element 6, past the storage's 6 elements/);
  });

  test('a storage the pickle names but the zip lacks', async () => {
    const missing = storedZip(clean.filter(([n]) => !n.endsWith('/data/1')));
    await expectError(write('missing-storage.pt', missing), 'bad-file', /no record archive\/data\/1/);
  });

  test('the legacy (pre-1.6) format is read: the same tensors as the zip checkpoint of the same state_dict', () => {
    const read = (f: string) => {
      const path = join(picklesDir, f);
      const root = readTorchObject(readFileSync(path), ctx(path));
      assert.ok(root instanceof PyDict);
      return new Map([...root.entries].map(([k, v]) => [k, v instanceof PyTensor ? { dims: v.tensor.dims, values: values(v.tensor) } : v]));
    };
    const legacy = read('legacy-clean.pt');
    assert.deepEqual([...legacy.keys()], ['fc.weight', 'fc.bias']);
    assert.deepEqual(legacy, read('clean.pt'));
  });

  test('a zip that is not a checkpoint', async () => {
    const npz = join(fmnist.data, 'clean.npz');
    const p = write('data.pt', readFileSync(npz));
    await expectError(p, 'unsupported-model', /not a torch\.save checkpoint/, 3);
  });

  test('a model size limit applies before reading', async () => {
    await assert.rejects(loadModel(join(templatesDir, 'resnet50-cifar.pt'), { limits: { maxModelBytes: 1000 } }), /over the model size limit of 1000 bytes;/);
  });

  test('a tensor element limit applies to every storage', async () => {
    await assert.rejects(loadModel(join(templatesDir, 'resnet50-cifar.pt'), { limits: { maxTensorElements: 100 } }), (e: unknown) => e instanceof BackdoorLensError && e.code === 'limit' && /over the tensor size limit of 100;/.test(e.message));
  });
});

describe('graphs built from weights are ordinary ONNX models', () => {
  test('they serialise and decode again with the same initializers', async () => {
    const m = await loadModel(join(templatesDir, 'resnet18-cifar.safetensors'));
    const again = OnnxModel.fromBytes(m.onnx.toBytes());
    assert.deepEqual(again.initializerNames(), m.onnx.initializerNames());
    assert.equal(again.opsetVersion(), 13);
  });
});
