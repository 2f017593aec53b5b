/**
 * Limits end to end: the model size and tensor size limits stop every loader (ONNX, torch.save,
 * safetensors) whether set in backdoor-lens.json or by flag, with one line naming the file, the
 * limit, the actual value and how to raise it; the time and memory limits stop a scan with the
 * stage it reached. Every one exits with the CLI's limit exit code, never a stack trace.
 */
import assert from 'node:assert/strict';
import { copyFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BackdoorLensError, loadModel } from '../../engine';
import { exitCodes } from '../../cli/main';
import { templatesDir } from '../formats/helpers';
import { cli, fmnist, tempDir } from '../helpers';

const models = [
  { format: 'ONNX', file: 'model.onnx', from: join(fmnist.badnets, 'model.onnx'), tensor: /initializer '[\w.]+' of shape \[[\d, ]+\] has (\d+) elements/ },
  { format: 'torch.save', file: 'model.pt', from: join(fmnist.badnets, 'model.pt'), tensor: /storage '\w+' has (\d+) elements/ },
  { format: 'safetensors', file: 'plain-cnn.safetensors', from: join(templatesDir, 'plain-cnn.safetensors'), tensor: /tensor '[\w.]+' of shape \[[\d, ]+\] has (\d+) elements/ },
];

/** The CLI failed on a limit: its exit code, one line, no stack. */
function limitFailure(r: { stderr: string; exitCode: number }): string {
  assert.equal(r.exitCode, exitCodes.limit, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);
  return r.stderr.trim();
}

/** A folder holding a copy of the model, with this backdoor-lens.json (none when undefined). */
function folder(from: string, file: string, config?: object): string {
  const dir = tempDir('bl-limits-');
  copyFileSync(from, join(dir, file));
  if (config) writeFileSync(join(dir, 'backdoor-lens.json'), JSON.stringify(config));
  return join(dir, file);
}

for (const m of models) {
  describe(`load limits on a ${m.format} file`, () => {
    const size = statSync(m.from).size;

    test('limits.maxModelBytes in backdoor-lens.json: refused before reading, naming the file, its size, the limit and the setting', async () => {
      const path = folder(m.from, m.file, { limits: { maxModelBytes: size - 1 } });
      for (const command of ['info', 'scan']) {
        const line = limitFailure(await cli(command, path));
        assert.ok(line.includes(path), line);
        assert.ok(line.includes(`(${size} bytes), over the model size limit of`) && line.includes(`(${size - 1} bytes)`), line);
        assert.match(line, /raise limits\.maxModelBytes in backdoor-lens\.json \(--max-model-mb on the command line\)/);
      }
      // One byte more and the same file loads.
      writeFileSync(join(path, '..', 'backdoor-lens.json'), JSON.stringify({ limits: { maxModelBytes: size } }));
      assert.equal((await cli('info', path)).exitCode, 0);
    });

    test('--max-model-mb: the flag alone, and over a larger limit in backdoor-lens.json', async () => {
      const plain = folder(m.from, m.file);
      const line = limitFailure(await cli('info', plain, '--max-model-mb', '0.1'));
      assert.ok(line.includes(plain) && line.includes(`(${size} bytes)`) && line.includes('over the model size limit of 102.4 KiB (104858 bytes)'), line);
      const configured = folder(m.from, m.file, { limits: { maxModelBytes: 10 * size } });
      limitFailure(await cli('info', configured, '--max-model-mb', '0.1'));
      assert.equal((await cli('info', configured)).exitCode, 0);
    });

    test('limits.maxTensorElements and --max-tensor-elements: the tensor, its element count, the limit and how to raise it', async () => {
      const configured = folder(m.from, m.file, { limits: { maxTensorElements: 1000 } });
      const plain = folder(m.from, m.file);
      for (const [path, args] of [[configured, []], [plain, ['--max-tensor-elements', '1000']]] as const) {
        const line = limitFailure(await cli('info', path, ...args));
        assert.ok(line.includes(path), line);
        const [, elements] = m.tensor.exec(line) ?? assert.fail(`no tensor named in: ${line}`);
        assert.ok(Number(elements) > 1000, line);
        assert.match(line, /over the tensor size limit of 1000; raise limits\.maxTensorElements in backdoor-lens\.json \(--max-tensor-elements on the command line\) to load it$/);
      }
    });

    test('the engine API: a limit error, code limit, with the file', async () => {
      await assert.rejects(loadModel(m.from, { limits: { maxTensorElements: 1000 } }), (e: unknown) => e instanceof BackdoorLensError && e.code === 'limit' && e.file === m.from);
      await assert.rejects(loadModel(m.from, { limits: { maxModelBytes: 1000 } }), (e: unknown) => e instanceof BackdoorLensError && e.code === 'limit' && e.file === m.from);
      // An unset limit keeps its default rather than switching the check off.
      const loaded = await loadModel(m.from, { limits: { maxModelBytes: undefined, maxTensorElements: undefined } });
      assert.ok(loaded.onnx.graph.node.length > 0);
    });
  });
}

describe('a scan stopped by a limit says where it was', () => {
  const data = join(fmnist.data, 'clean.npz');

  test('time limit on the BadNets model: stopped inside the trigger reversal, with how far it got', async () => {
    const line = limitFailure(await cli('scan', join(fmnist.badnets, 'model.onnx'), '--data', data, '--methods', 'pairs', '--time-limit', '3'));
    assert.match(line, /^backdoor-lens: scan stopped: time limit 3 s reached during trigger reversal step \d+\/\d+ \(10 targets, 9 class shifts, 5 screens\); raise timeLimitSeconds \(--time-limit on the command line\) to let it finish$/);
  });

  test('timeLimitSeconds in backdoor-lens.json does the same; a fraction of a second reads as such', async () => {
    const path = folder(join(fmnist.badnets, 'model.onnx'), 'model.onnx', { data: data, methods: ['pairs'], timeLimitSeconds: 2.5 });
    const line = limitFailure(await cli('scan', path));
    assert.match(line, /scan stopped: time limit 2\.5 s reached during trigger reversal step \d+\/\d+ /);
  });

  test('memory limit: stopped naming the limit, what the process used and the analysis it was in', async () => {
    const line = limitFailure(await cli('scan', join(fmnist.badnets, 'model.onnx'), '--data', data, '--methods', 'bnp,pairs', '--max-memory', '1'));
    const [, used] = /^backdoor-lens: scan stopped: memory limit 1 MB reached during the BN statistics \(BNP\) analysis \(the process used (\d+) MB\); raise limits\.maxMemoryMB \(--max-memory on the command line\), or scan with less data$/.exec(line) ?? assert.fail(line);
    assert.ok(Number(used) > 1, line);
  });

  test('limits.maxMemoryMB in backdoor-lens.json does the same', async () => {
    const path = folder(join(fmnist.badnets, 'model.onnx'), 'model.onnx', { data: data, methods: ['clp'], limits: { maxMemoryMB: 1 } });
    const line = limitFailure(await cli('scan', path));
    assert.match(line, /scan stopped: memory limit 1 MB reached during the Channel Lipschitzness \(CLP\) analysis/);
  });
});

describe('limit flags are checked', () => {
  test('a non-positive --max-model-mb or a fractional --max-tensor-elements is a usage error', async () => {
    const model = join(fmnist.badnets, 'model.onnx');
    for (const args of [['--max-model-mb', '0'], ['--max-model-mb', 'lots'], ['--max-tensor-elements', '1.5']]) {
      const r = await cli('info', model, ...args);
      assert.equal(r.exitCode, exitCodes.usage, `${args}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`--${args[0].slice(2)}`));
    }
  });
});
