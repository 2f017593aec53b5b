/**
 * Issue 15's hostile corpus (fixtures/hostile, made by tools/fixtures/hostile.py): each file gets
 * the error or the finding it must, the exit code it must, and nothing outside the model's folder
 * is opened — a canary in the working directory never reaches a report or a tensor.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BackdoorLensError, loadModel, UnsafeCheckpointError } from '../../engine';
import { hasExternalData } from '../../engine/graph/model-tensors';
import { Runtime } from '../../engine/runtime';
import { exitCodes } from '../../cli/main';
import { cli, fixtures, tempDir } from '../helpers';
import { tracedCli } from '../reliability/traced';

const hostile = join(fixtures, 'hostile');
const manifest: { pickles: { file: string; code?: string; error?: string; exit: number; symbols?: string[]; live?: boolean; canary?: string }[] } = JSON.parse(
  readFileSync(join(hostile, 'manifest.json'), 'utf8'),
);
const canaries = manifest.pickles.flatMap((c) => (c.canary ? [c.canary] : []));
const noPayloadRan = () => {
  for (const c of canaries) assert.equal(existsSync(c), false, `${c} exists: a payload ran`);
};

/** One line on stderr, ours: no stack, no "internal error", no native log line. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${stderr}`);
  assert.match(lines[0], /^backdoor-lens: /);
  assert.doesNotMatch(lines[0], /internal error|\n\s+at |\[E:onnxruntime/);
  return lines[0];
}

describe('pickles that run code are errors, never "not known to be dangerous"', () => {
  before(() => canaries.forEach((c) => rmSync(c, { force: true })));
  after(noPayloadRan);

  test('the corpus has the issue\'s payloads, each verified live under torch.load/pickle (--verify)', () => {
    const live = manifest.pickles.filter((c) => c.live).map((c) => c.file);
    for (const f of ['osx-support.pt', 'pydoc-pipepager.pt', 'uuid-command.pt', 'gcd-methodcaller.pt', 'gcd-attrgetter.pt', 'pathlib-write-text.pt', 'fx-forward-from-src.pt', 'collect-env-run.pt', 'lone-upper-data-pkl.pt', 'legacy-tar.pt']) {
      assert.ok(live.includes(f), f);
    }
  });

  for (const c of manifest.pickles) {
    test(`${c.file}: ${c.code ?? c.error}, exit ${c.exit}`, async () => {
      const path = join(hostile, c.file);
      const r = await cli('scan', path);
      assert.equal(r.exitCode, c.exit, `${c.file}: ${r.stdout}${r.stderr}`);
      if (c.code) {
        assert.match(r.stdout, new RegExp(`error +${c.code} `), r.stdout);
        assert.doesNotMatch(r.stdout, /not known to be dangerous|nothing unsafe was found/);
        for (const s of c.symbols ?? []) assert.ok(r.stdout.includes(s), `${c.file}: ${s} in\n${r.stdout}`);
        // The finding names the command it would run.
        if (c.live && c.canary && c.file !== 'fx-forward-from-src.pt') assert.ok(r.stdout.includes(c.canary.replace('/tmp/backdoor-lens-canary-', '')), r.stdout);
        const e = await loadModel(path).then(() => undefined, (x: unknown) => x);
        assert.ok(e instanceof UnsafeCheckpointError && e.dangerous, String(e));
      } else {
        assert.ok(oneLine(r.stderr).includes(c.error!), r.stderr);
      }
      noPayloadRan();
    });
  }

  test('a user-defined class stays a warning (BL031, exit 3); its module is named', async () => {
    const r = await cli('scan', join(fixtures, 'pickles', 'unknown-global.pt'));
    assert.equal(r.exitCode, 3, r.stderr);
    assert.match(r.stdout, /warning +BL031 .*__main__\.Thing, called as __main__\.Thing\(\), a class of the code that saved the model \(__main__\)/);
  });

  test('refused files say whether their pickle is dangerous: a clean legacy tar says nothing unsafe was found', async () => {
    const r = await cli('info', join(hostile, 'legacy-tar-clean.pt'));
    assert.equal(r.exitCode, exitCodes['unsupported-model']);
    assert.match(oneLine(r.stderr), /legacy tar format.*nothing unsafe was found in its pickles/);
  });

  test('a second pickle after the first STOP is read: requests.api.get is found', async () => {
    const r = await cli('info', join(hostile, 'second-pickle.pkl'));
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /BL030: loading this file with torch\.load or pickle would run requests\.api\.get\('http:\/\/127\.0\.0\.1:9\/exfiltrate'\)/);
  });

  test('zip members are matched as torch matches them: a lone DATA.PKL is data.pkl, an extra one is a duplicate', async () => {
    const lone = await cli('scan', join(hostile, 'lone-upper-data-pkl.pt'));
    assert.match(lone.stdout, /BL030 .*os\.system\('touch \/tmp\/backdoor-lens-canary-lone-upper-data-pkl'\).*archive\/DATA\.PKL/);
    const dup = await cli('scan', join(hostile, 'upper-case-duplicate.pt'));
    assert.match(dup.stdout, /BL032 .*'archive\/data\.pkl' and 'archive\/DATA\.PKL', one name to a reader that ignores case/);
    const ts = await cli('scan', join(hostile, 'torchscript-members.pt'));
    assert.match(ts.stdout, /BL032 .*TorchScript members \(archive\/constants\.pkl, archive\/code\/__torch__\.py\), so torch\.load hands it to torch\.jit\.load/);
  });

  test('a text file named .pt: a sensible message, exit 3', async () => {
    const r = await cli('eval', join(hostile, 'text.pt'), '--data', join(hostile, 'tiny.npz'));
    assert.equal(r.exitCode, 3);
    assert.equal(oneLine(r.stderr), `backdoor-lens: ${join(hostile, 'text.pt')}: is a text file, not a PyTorch checkpoint (torch.save writes a zip or a binary pickle)`);
  });
});

describe('ONNX external data: only from the model\'s own folder, read by us', () => {
  // The working directory holds the canary; the models sit in a folder below it.
  const work = tempDir('bl-ext-');
  const models = join(work, 'models');
  const canaryValue = 1234.5;
  const canaryBytes = Buffer.from(new Float32Array(4).fill(canaryValue).buffer);
  before(() => {
    mkdirSync(models);
    writeFileSync(join(work, 'canary.bin'), canaryBytes);
    for (const f of ['ext-constant.onnx', 'ext-initializer-parent.onnx', 'ext-subgraph.onnx', 'ext-sparse.onnx', 'ext-inside.onnx', 'ext-inside.bin']) copyFileSync(join(hostile, f), join(models, f));
  });

  const refused: [string, RegExp][] = [
    ['ext-constant.onnx', /tensor 'c' \(attribute 'value' of Constant node 'Constant_0'\): external data 'canary\.bin' does not exist in the model's folder/],
    ['ext-initializer-parent.onnx', /tensor 'w' \(initializer\): external data '\.\.\/canary\.bin' is outside the model's folder .* \(it resolves to .*canary\.bin\)/],
    ['ext-subgraph.onnx', /tensor '[te]' \(attribute 'value' of Constant node 'Constant_0' \(the subgraph in attribute '(then|else)_branch' of If node 'If_1'\)\): external data '\.\.\/canary\.bin' is outside/],
    ['ext-sparse.onnx', /tensor 's' \(values of a sparse initializer\): external data '\.\.\/canary\.bin' is outside/],
  ];

  for (const [file, message] of refused) {
    test(`${file}: refused naming the tensor, exit 2, the canary never opened nor reported`, async () => {
      const path = join(models, file);
      await assert.rejects(loadModel(path), (e: unknown) => e instanceof BackdoorLensError && e.code === 'bad-file' && message.test(e.message));
      for (const command of [['info', path], ['scan', path, '--json']]) {
        const r = tracedCli(command, work);
        assert.equal(r.exitCode, exitCodes['bad-file'], r.stderr);
        assert.match(oneLine(r.stderr), message);
        assert.ok(!r.stdout.includes(String(canaryValue)) && !r.stderr.includes(String(canaryValue)));
        assert.ok(r.opened.includes(path), 'the trace sees the model being opened');
        assert.deepEqual(r.opened.filter((p) => p.endsWith('canary.bin')), [], 'the canary was opened');
      }
    });
  }

  test('a symlink in the model\'s folder to a file outside it, an absolute path, /dev/zero and a FIFO: refused', async () => {
    const dir = join(work, 'links');
    mkdirSync(dir);
    symlinkSync(join(work, 'canary.bin'), join(dir, 'inside-looking.bin'));
    symlinkSync('/dev/zero', join(dir, 'zero.bin'));
    execFileSync('mkfifo', [join(dir, 'fifo.bin')]);
    const cases: [string, RegExp][] = [
      ['inside-looking.bin', /is outside the model's folder .* \(it resolves to .*canary\.bin\)/],
      [join(work, 'canary.bin'), /is an absolute path; it must be inside the model's folder/],
      ['zero.bin', /is outside the model's folder .* \(it resolves to \/dev\/zero\)/],
      ['fifo.bin', /is a FIFO \(named pipe\), not a regular external data file/],
    ];
    for (const [i, [location, message]] of cases.entries()) {
      await assert.rejects(loadModelWithLocation(dir, `m-${i}.onnx`, location), (e: unknown) => e instanceof BackdoorLensError && message.test(e.message), location);
    }
    const r = tracedCli(['info', join(dir, 'm-0.onnx')], work);
    assert.equal(r.exitCode, exitCodes['bad-file']);
    assert.deepEqual(r.opened.filter((p) => p.endsWith('canary.bin')), []);
  });

  test('external data inside the folder loads, with the right values; onnxruntime gets a self-contained model', async () => {
    const m = await loadModel(join(models, 'ext-inside.onnx'));
    assert.equal(hasExternalData(m.onnx.proto), undefined);
    const runtime = new Runtime({ threads: 1 });
    try {
      const session = await runtime.session(m.onnx);
      const out = await session.run({ x: { dtype: 'float32', dims: [1, 4], data: Float32Array.from([1, 1, 1, 1]) } });
      assert.deepEqual(Array.from(out.y.data as Float32Array), [2.5, -1, 1.25, 9]);
    } finally {
      await runtime.dispose();
    }
  });

  test('a truncated external file and a length that contradicts the dims: one line each', async () => {
    const dir = join(work, 'short');
    mkdirSync(dir);
    writeFileSync(join(dir, 'ext-inside.bin'), Buffer.alloc(20));
    copyFileSync(join(hostile, 'ext-inside.onnx'), join(dir, 'ext-inside.onnx'));
    await assert.rejects(loadModel(join(dir, 'ext-inside.onnx')), /tensor 'w' \(initializer\) needs 16 bytes at offset 16 of external file 'ext-inside\.bin', which holds 20 bytes/);
  });
});

/** ext-inside.onnx with its initializer's location changed, written to `dir/name`; its load. */
async function loadModelWithLocation(dir: string, name: string, location: string): Promise<unknown> {
  const { OnnxModel } = await import('../../engine/graph/model');
  const m = OnnxModel.fromBytes(readFileSync(join(hostile, 'ext-inside.onnx')));
  const t = m.graph.initializer[0];
  t.external_data = (t.external_data ?? []).map((e) => (e.key === 'location' ? { key: 'location', value: location } : e));
  writeFileSync(join(dir, name), m.toBytes());
  return loadModel(join(dir, name));
}
