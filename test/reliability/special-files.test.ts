/**
 * Inputs that are not regular files: a model or data set that is (or links to) /dev/zero, a FIFO or
 * a socket. Each is refused at once with one line naming the path and what it is; nothing hangs,
 * nothing grows (stat says 0 bytes for a device, and a FIFO blocks its reader forever).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { exitCodes } from '../../cli/main';
import { cli, fmnist, tempDir } from '../helpers';
import { tracedCli } from './traced';

const dir = tempDir('bl-special-');
const fifo = join(dir, 'model.onnx');
execFileSync('mkfifo', [fifo]);
symlinkSync('/dev/zero', join(dir, 'zero.pt'));
symlinkSync('/dev/zero', join(dir, 'zero.npz'));
execFileSync('mkfifo', [join(dir, 'data.npz')]);
copyFileSync(join(fmnist.badnets, 'model.onnx'), join(dir, 'real.onnx'));

function refused(r: { stderr: string; exitCode: number }, path: string, kind: RegExp): void {
  assert.equal(r.exitCode, exitCodes['bad-file'], r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(lines[0].startsWith(`backdoor-lens: ${path}: is `), lines[0]);
  assert.match(lines[0], kind);
  assert.match(lines[0], /Backdoor Lens reads regular files only$/);
}

describe('special files are refused, never read', () => {
  test('a FIFO as the model: every command refuses it at once', async () => {
    for (const command of ['info', 'scan', 'eval', 'fix']) {
      const extra = command === 'eval' ? ['--data', join(fmnist.data, 'test.npz')] : command === 'fix' ? ['--method', 'clp', '--out', join(dir, 'out.onnx')] : [];
      refused(await cli(command, fifo, ...extra), fifo, /a FIFO \(named pipe\), not a regular model file/);
    }
  });

  test('a symlink to /dev/zero as the model and as --data: refused as a character device', async () => {
    refused(await cli('info', join(dir, 'zero.pt')), join(dir, 'zero.pt'), /a character device, not a regular model file/);
    refused(await cli('eval', join(dir, 'real.onnx'), '--data', join(dir, 'zero.npz')), join(dir, 'zero.npz'), /a character device, not a regular data file/);
  });

  test('a FIFO as --data, and a socket as the model', async () => {
    refused(await cli('eval', join(dir, 'real.onnx'), '--data', join(dir, 'data.npz')), join(dir, 'data.npz'), /a FIFO \(named pipe\), not a regular data file/);
    const sock = join(dir, 'model.sock.onnx');
    const server = createServer().listen(sock);
    await new Promise((r) => server.once('listening', r));
    try {
      // A socket cannot be opened as a file at all: the open fails and says so, in one line.
      const r = await cli('info', sock);
      assert.equal(r.exitCode, exitCodes['bad-file'], r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.match(r.stderr, /model\.sock\.onnx: is a socket \(or a device with nothing behind it\), not a regular file; Backdoor Lens reads regular files only$/m);
    } finally {
      server.close();
    }
  });

  test('the built CLI on a FIFO ends as soon as it has started and opens it without blocking', () => {
    // What starting the traced CLI costs on this machine now (a loaded machine takes seconds): a
    // blocking open would hang until the 2-minute kill, far past this.
    const startup = tracedCli(['--version'], dir).wallMs;
    const r = tracedCli(['info', fifo], dir);
    assert.equal(r.exitCode, exitCodes['bad-file'], r.stderr);
    assert.ok(r.wallMs < 5_000 + 3 * startup, `${r.wallMs} ms (start-up ${startup} ms)`);
    assert.ok(r.opened.includes(fifo));
  });
});
