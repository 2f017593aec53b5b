/**
 * Raw JSON-RPC against `backdoor-lens lsp --stdio` (the built CLI): a malformed header closes the
 * connection and the server exits instead of wedging; closed input ends the server; requests with
 * broken params are answered with a line of ours, never a raw JavaScript error.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { tempDir } from '../helpers';
import { cliBin } from './traced';

function server(): { child: ChildProcessWithoutNullStreams; exited: Promise<{ code: number | null; at: number }>; stderr: () => string; stdout: () => string } {
  const child = spawn(process.execPath, [cliBin, 'lsp', '--stdio'], { cwd: tempDir('bl-lsp-raw-'), env: { ...process.env, NODE_OPTIONS: '' } });
  // A failed test leaves no server behind to hold the test file open.
  after(() => void (child.exitCode === null && child.kill()));
  let err = '';
  let out = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() })));
  return { child, exited, stderr: () => err, stdout: () => out };
}

const frame = (message: object) => {
  const body = Buffer.from(JSON.stringify(message));
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`), body]);
};

/** The server's answer to request `id`, waited for (up to two minutes: the start-up on a loaded machine). */
async function answer(s: ReturnType<typeof server>, id: number): Promise<{ result?: unknown; error?: { code: number; message: string } }> {
  for (const end = Date.now() + 120_000; Date.now() < end; ) {
    for (const m of s.stdout().split(/Content-Length: \d+\r\n\r\n/).filter(Boolean)) {
      const parsed = JSON.parse(m);
      if (parsed.id === id) return parsed;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`no answer to request ${id}: ${s.stdout()}`);
}

const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { processId: null, rootUri: null, capabilities: {} } };

describe('lsp --stdio framing and lifecycle', () => {
  for (const [header, reason] of [
    ['Content-Length: -5', /Content-Length '-5' is not a byte count/],
    ['Content-Length: 99999999999', /Content-Length 99999999999 is over the 67108864-byte limit of a message/],
    ['Content-Length: lots', /Content-Length 'lots' is not a byte count/],
    ['Content-Type: application/json', /a header without Content-Length/],
  ] as const) {
    test(`'${header}' after a good message: the connection closes, the server exits saying why`, async () => {
      const s = server();
      s.child.stdin.write(frame(initialize));
      await answer(s, 1);
      const sent = Date.now();
      s.child.stdin.write(`${header}\r\n\r\n{"jsonrpc":"2.0","id":2,"method":"shutdown"}`);
      const { code, at } = await s.exited;
      assert.equal(code, 1, s.stderr());
      // The running server closes at once; 30 s leaves room for a loaded machine, never for a wedge.
      assert.ok(at - sent < 30_000, `exited ${at - sent} ms after the header`);
      const lines = s.stderr().trim().split('\n');
      assert.match(lines.at(-1)!, /^backdoor-lens: lsp: closing the connection: malformed message header/);
      assert.match(lines.at(-1)!, reason);
    });
  }

  test('closed input: the server exits (0), the engine worker with it', async () => {
    const s = server();
    s.child.stdin.write(frame(initialize));
    await answer(s, 1);
    s.child.stdin.end();
    const { code } = await s.exited;
    assert.equal(code, 0, s.stderr());
  });

  test('broken params are answered with our line, never a raw JavaScript error', async () => {
    const s = server();
    s.child.stdin.write(frame(initialize));
    await answer(s, 1);
    s.child.stdin.write(frame({ jsonrpc: '2.0', method: 'initialized', params: {} }));
    s.child.stdin.write(frame({ jsonrpc: '2.0', id: 2, method: 'backdoorLens/report', params: null }));
    s.child.stdin.write(frame({ jsonrpc: '2.0', id: 3, method: 'backdoorLens/scan', params: { uri: 42 } }));
    s.child.stdin.write(frame({ jsonrpc: '2.0', id: 4, method: 'backdoorLens/scan', params: { uri: 'file:///nonexistent/model.onnx' } }));
    const report = await answer(s, 2);
    assert.equal(report.error?.message, 'backdoorLens/report takes { uri: string }');
    const scan = await answer(s, 3);
    assert.equal(scan.error?.message, 'backdoorLens/scan takes { uri: string }');
    const missing = (await answer(s, 4)) as { result?: { status: string; message: string } };
    assert.equal(missing.result?.status, 'failed');
    assert.equal(missing.result?.message, 'no such file');
    assert.doesNotMatch(s.stdout(), /TypeError|Cannot read properties|is not a function|\n\s+at /);
    s.child.stdin.end();
    await s.exited;
  });
});
