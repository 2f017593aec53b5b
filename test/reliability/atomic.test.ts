/**
 * Nothing lost: writes go through a temporary file and a rename, a failed or cancelled write
 * leaves the old file and no temporary one, an exclusive write never replaces a file, and the CLI
 * fix never changes its input and never lets a second fix overwrite the first.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BackdoorLensError, loadModel } from '../../engine';
import { removeTempFiles, tempPrefix, writeFileAtomic, writeFilesAtomic } from '../../engine/io/atomic';
import { exitCodes } from '../../cli/main';
import { cli, fileSha256, fmnist, tempDir } from '../helpers';

const temps = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.tmp'));

/** A signal that reads as aborted from its nth check on: a cancellation arriving midway through a write. */
function abortsAtCheck(n: number): AbortSignal {
  const controller = new AbortController();
  let checks = 0;
  const signal = controller.signal;
  return new Proxy(signal, {
    get(target, prop) {
      if (prop === 'throwIfAborted') {
        return () => {
          if (++checks >= n) controller.abort(new DOMException('cancelled', 'AbortError'));
          target.throwIfAborted();
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

describe('atomic writes', () => {
  test('a write replaces the whole file and leaves no temporary file', () => {
    const dir = tempDir();
    const path = join(dir, 'out.bin');
    writeFileSync(path, 'old');
    writeFileAtomic(path, new Uint8Array(1000).fill(7));
    assert.deepEqual(readFileSync(path), Buffer.alloc(1000, 7));
    assert.deepEqual(temps(dir), []);
  });

  test('cancelled between chunks: the old file stays as it was and the temporary file is gone', () => {
    const dir = tempDir();
    const path = join(dir, 'model.onnx');
    writeFileSync(path, 'the previous model');
    // 40 MiB is three 16 MiB chunks; the cancellation lands before the second.
    assert.throws(() => writeFileAtomic(path, new Uint8Array(40 * 2 ** 20), { signal: abortsAtCheck(2) }), (e: Error) => e.name === 'AbortError');
    assert.equal(readFileSync(path, 'utf8'), 'the previous model');
    assert.deepEqual(readdirSync(dir), ['model.onnx']);
  });

  test('several files: one that cannot be written means none is put in place', () => {
    const dir = tempDir();
    const a = join(dir, 'a.onnx');
    assert.throws(() => writeFilesAtomic([{ path: a, data: 'a' }, { path: join(dir, 'missing', 'b.safetensors'), data: 'b' }]), /cannot write .*missing\/b\.safetensors: the folder .*missing does not exist; create it first$/);
    assert.deepEqual(readdirSync(dir), []);
  });

  test('outputs that cannot be written are one line of ours: a missing folder, a folder as the output', () => {
    const dir = tempDir();
    assert.throws(() => writeFileAtomic(join(dir, 'missing-dir', 'x.onnx'), 'x'), (e: unknown) => e instanceof BackdoorLensError && e.code === 'usage' && /^cannot write .*missing-dir\/x\.onnx: the folder .*missing-dir does not exist; create it first$/.test(e.message));
    assert.throws(() => writeFileAtomic(dir, 'x'), (e: unknown) => e instanceof BackdoorLensError && /^cannot write .*: it is a folder; give a file name$/.test(e.message));
    assert.deepEqual(readdirSync(dir), []);
  });

  test('fix --out into a missing folder, and --force onto a folder: one line, exit 4, no internal error', async () => {
    const dir = tempDir();
    const model = join(fmnist.badnets, 'model.onnx');
    const missing = await cli('fix', model, '--method', 'clp', '--out', join(dir, 'missing-dir', 'x.onnx'));
    assert.equal(missing.exitCode, exitCodes.usage);
    assert.match(missing.stderr.trim(), /^backdoor-lens: cannot write .*missing-dir\/x\.onnx: the folder .*missing-dir does not exist; create it first \(see 'backdoor-lens fix --help'\)$/);
    const folder = await cli('fix', model, '--method', 'clp', '--out', dir, '--force');
    assert.equal(folder.exitCode, exitCodes.usage);
    assert.match(folder.stderr.trim(), /^backdoor-lens: cannot write .*: it is a folder; give a file name/);
    for (const r of [missing, folder]) assert.doesNotMatch(r.stderr, /internal error|ENOENT|EISDIR/);
  });

  test('exclusive: an existing file is never replaced, and the set is all or nothing', () => {
    const dir = tempDir();
    const a = join(dir, 'm.purified.onnx');
    const b = join(dir, 'm.purified.safetensors');
    writeFileSync(b, 'someone else');
    assert.throws(
      () => writeFilesAtomic([{ path: a, data: 'mine' }, { path: b, data: 'mine' }], { exclusive: true }),
      (e: unknown) => e instanceof BackdoorLensError && e.code === 'usage' && e.file === b && /m\.purified\.safetensors appeared while it was being written; not overwriting it/.test(e.message),
    );
    assert.equal(readFileSync(b, 'utf8'), 'someone else');
    assert.equal(existsSync(a), false, 'the first file of the set was taken back');
    assert.deepEqual(temps(dir), []);
    writeFilesAtomic([{ path: a, data: 'mine' }], { exclusive: true });
    assert.equal(readFileSync(a, 'utf8'), 'mine');
  });

  test('removeTempFiles takes only this process’s temporary files for that target', () => {
    const dir = tempDir();
    const target = join(dir, 'm.purified.onnx');
    const mine = `${tempPrefix(target)}1-0-abcd.tmp`;
    const others = [join(dir, `.m.purified.onnx.${process.pid + 1}.1-0-abcd.tmp`), `${tempPrefix(join(dir, 'other.onnx'))}1-0-abcd.tmp`, join(dir, 'm.purified.onnx')];
    for (const p of [mine, ...others]) writeFileSync(p, 'x');
    assert.deepEqual(removeTempFiles(target), [mine]);
    assert.deepEqual(readdirSync(dir).sort(), others.map((p) => p.slice(dir.length + 1)).sort());
  });
});

describe('CLI fix: the input is never changed, a second fix never overwrites the first', () => {
  const data = join(fmnist.data, 'clean.npz');

  test('the input hashes the same after the fix; the output is a complete model', async () => {
    const dir = tempDir();
    const input = join(dir, 'model.onnx');
    copyFileSync(join(fmnist.badnets, 'model.onnx'), input);
    const before = fileSha256(input);
    const out = join(dir, 'fixed.onnx');
    const r = await cli('fix', input, '--method', 'bnp', '--mode', 'fixed', '--data', data, '--no-reversal', '--out', out);
    // Nothing measured the fix (no trigger reversed, no triggered set): exit 1, yet the file is whole.
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /^backdoor-lens: bnp: failed — nothing shows the backdoor removed/);
    assert.equal(fileSha256(input), before);
    assert.ok((await loadModel(out)).onnx.graph.node.length > 0);
    assert.deepEqual(readdirSync(dir).sort(), ['fixed.onnx', 'model.onnx']);
  });

  test('two fixes to the same --out at once: one writes it, the other stops with a usage error, the file is whole', async () => {
    const dir = tempDir();
    const input = join(dir, 'model.onnx');
    copyFileSync(join(fmnist.badnets, 'model.onnx'), input);
    const before = fileSha256(input);
    const out = join(dir, 'fixed.onnx');
    // Both pass the "exists?" check at their start; the second finds the file only when it publishes.
    const results = await Promise.all(['bnp', 'clp'].map((m) => cli('fix', input, '--method', m, '--mode', 'fixed', '--data', data, '--no-reversal', '--out', out)));
    const wrote = results.filter((r) => /; wrote .*fixed\.onnx$/.test(r.stderr));
    const refused = results.filter((r) => r.exitCode === exitCodes.usage);
    assert.equal(wrote.length, 1, results.map((r) => r.stderr).join('\n'));
    assert.equal(refused.length, 1, results.map((r) => r.stderr).join('\n'));
    assert.equal(refused[0].exitCode, exitCodes.usage);
    assert.match(refused[0].stderr, /fixed\.onnx appeared while it was being written; not overwriting it/);
    assert.ok((await loadModel(out)).onnx.graph.initializer.length > 0, 'the output decodes as a whole model');
    assert.equal(fileSha256(input), before);
    assert.deepEqual(readdirSync(dir).sort(), ['fixed.onnx', 'model.onnx']);
  });
});
