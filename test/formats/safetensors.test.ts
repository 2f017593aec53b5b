import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BackdoorLensError, loadModel } from '../../engine';
import { floatToBfloat16, floatToHalf } from '../../engine/formats/float-bits';
import { encodeSafetensors, readSafetensors } from '../../engine/formats/safetensors-file';
import { bfloat16ToFloat, halfToFloat, type Tensor } from '../../engine/tensor';
import { cli, tempDir } from '../helpers';
import { templatesDir } from './helpers';

const file = join(templatesDir, 'resnet18-cifar.safetensors');

/** A safetensors file from a header object and a data section. */
function craft(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  Buffer.from(data).copy(out, 8 + json.length);
  return new Uint8Array(out);
}

describe('safetensors reading', () => {
  test('reads every tensor of the fixture with its dtype and shape; float32 data is a view when aligned', () => {
    const bytes = readFileSync(file);
    const { tensors, metadata } = readSafetensors(file, bytes, 2 ** 28);
    assert.equal(metadata.format, 'pt');
    assert.deepEqual(tensors.get('conv1.weight')!.dims, [4, 3, 3, 3]);
    assert.equal(tensors.get('bn1.num_batches_tracked')!.dtype, 'int64');
    assert.equal((tensors.get('bn1.num_batches_tracked')!.data as BigInt64Array)[0], 1000n);
    assert.equal(tensors.get('conv1.weight')!.data.buffer, bytes.buffer);
  });

  test('bfloat16 weights load (vgg19 fixture) and build the model', async () => {
    const m = await loadModel(join(templatesDir, 'vgg19-imagenet.safetensors'), { inputSize: { height: 64, width: 64 } });
    assert.equal(m.format, 'safetensors');
    assert.equal(m.architecture, 'vgg19');
  });

  test('encode → read gives back the same tensors, in order, with metadata', () => {
    const { tensors } = readSafetensors(file, readFileSync(file), 2 ** 28);
    const again = readSafetensors('again', encodeSafetensors(tensors, { note: 'x' }), 2 ** 28);
    assert.deepEqual([...again.tensors.keys()], [...tensors.keys()]);
    for (const [k, t] of tensors) {
      const u = again.tensors.get(k)!;
      assert.equal(u.dtype, t.dtype);
      assert.deepEqual(u.dims, t.dims);
      assert.deepEqual(Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), k);
    }
    assert.equal(again.metadata.note, 'x');
  });

  test('the data section of written files starts 8-byte aligned', () => {
    const bytes = encodeSafetensors([['a', { dtype: 'float32', dims: [1], data: Float32Array.of(1) } as Tensor]]);
    assert.equal((8 + Number(Buffer.from(bytes).readBigUInt64LE(0))) % 8, 0);
  });
});

describe('broken safetensors files: one clear error each (CLI exit 2)', () => {
  const dir = tempDir();
  const f32 = new Uint8Array(Float32Array.of(1, 2, 3, 4).buffer);
  const cases: [string, Uint8Array, BackdoorLensError['code'], RegExp][] = [
    ['header longer than the file', (() => { const b = craft({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32); new DataView(b.buffer).setBigUint64(0, 1n << 40n, true); return b; })(), 'bad-file', /header declares 1099511627776 bytes but the file has only/],
    ['header not JSON', (() => { const b = craft({}); b[8] = 0x7b; b[9] = 0x7b; return b; })(), 'bad-file', /not valid JSON/],
    ['unknown dtype', craft({ a: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4)), 'bad-file', /dtype "F8_E4M3", which Backdoor Lens does not read/],
    ['data past the end', craft({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32.subarray(0, 8)), 'bad-file', /spans bytes 0\.\.16 of a 8-byte data section/],
    ['shape and byte range disagree', craft({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, f32), 'bad-file', /needs 12 bytes but spans 16/],
    ['dims whose product exceeds the file', craft({ a: { dtype: 'F32', shape: [8192, 8192], data_offsets: [0, 16] } }, f32), 'bad-file', /needs 268435456 bytes but spans 16/],
    ['dims past the element limit', craft({ a: { dtype: 'F32', shape: [1 << 20, 1 << 20], data_offsets: [0, 16] } }, f32), 'limit', /has 1099511627776 elements, over the tensor size limit of 268435456/],
    ['overlapping tensors', craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32), 'bad-file', /overlap/],
    ['negative shape', craft({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }), 'bad-file', /invalid shape/],
  ];
  for (const [name, bytes, code, pattern] of cases) {
    test(name, async () => {
      const path = join(dir, `${name.replace(/\W+/g, '-')}.safetensors`);
      writeFileSync(path, bytes);
      await assert.rejects(loadModel(path), (e: unknown) => e instanceof BackdoorLensError && e.code === code && pattern.test(e.message));
      const r = await cli('info', path);
      assert.equal(r.exitCode, 2);
      assert.ok(r.stderr.includes(path), r.stderr);
    });
  }
});

describe('float32 → float16 / bfloat16 for writing weights back', () => {
  test('every finite float16 pattern survives decode → encode', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue; // NaN payloads
      assert.equal(floatToHalf(halfToFloat(h)), h, `0x${h.toString(16)}`);
    }
  });

  test('every finite bfloat16 pattern survives decode → encode', () => {
    for (let b = 0; b < 0x10000; b++) {
      if ((b & 0x7f80) === 0x7f80 && b & 0x7f) continue;
      assert.equal(floatToBfloat16(bfloat16ToFloat(b)), b, `0x${b.toString(16)}`);
    }
  });

  test('rounding is to nearest, ties to even; overflow is infinity', () => {
    assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // tie → even (1.0)
    assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02); // tie → even (1 + 2^-9)
    assert.equal(floatToHalf(70000), 0x7c00);
    assert.equal(floatToHalf(-(2 ** -25)), 0x8000);
    assert.ok(Number.isNaN(halfToFloat(floatToHalf(NaN))));
  });
});
