/**
 * The server's fix path with a stand-in worker: fixes requested together never share an output
 * path, and a fix whose worker thread had to be terminated midway through a write leaves no
 * temporary file in the folder.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { JobQueue } from '../../server/src/jobs/queue';
import { JobFailure, WorkerHost } from '../../server/src/jobs/worker-host';
import { CheckpointService } from '../../server/src/service';
import { root, tempDir } from '../helpers';

const fake = join(root, 'test', 'server', 'fixtures', 'fake-worker.mjs');

function service(): CheckpointService {
  const host = new WorkerHost(fake, { graceMs: 200 });
  after(() => host.dispose());
  return new CheckpointService(new JobQueue(host), {
    settingsFor: async () => ({}),
    changed: () => undefined,
    progress: async () => ({ report: () => undefined, done: () => undefined }),
    log: () => undefined,
  });
}

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; !condition(); i++) {
    if (i > 500) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('fixes through the server’s service', () => {
  test('two fixes of one model requested together write distinct files, each whole; a later one takes the next name', async () => {
    const svc = service();
    const dir = tempDir();
    const model = join(dir, 'model.onnx');
    writeFileSync(model, 'a model');
    const uri = pathToFileURL(model).href;
    const [a, b] = await Promise.all([svc.fix(uri, 'bnp'), svc.fix(uri, 'clp')]);
    assert.deepEqual([a.outputs, b.outputs], [[pathToFileURL(join(dir, 'model.purified.onnx')).href], [pathToFileURL(join(dir, 'model.purified-2.onnx')).href]]);
    assert.equal(readFileSync(join(dir, 'model.purified.onnx'), 'utf8'), 'purified bnp');
    assert.equal(readFileSync(join(dir, 'model.purified-2.onnx'), 'utf8'), 'purified clp');
    const c = await svc.fix(uri, 'ep');
    assert.deepEqual(c.outputs, [pathToFileURL(join(dir, 'model.purified-3.onnx')).href]);
    assert.equal(readFileSync(model, 'utf8'), 'a model');
  });

  test('a fix cancelled while its worker is blocked in a write: the thread is stopped and its temporary file removed', async () => {
    const svc = service();
    const dir = tempDir();
    const model = join(dir, 'hang-writing.onnx');
    writeFileSync(model, 'a model');
    const abort = new AbortController();
    const fix = svc.fix(pathToFileURL(model).href, 'bnp', { signal: abort.signal });
    await until('the worker to start writing', () => readdirSync(dir).some((n) => n.endsWith('.tmp')));
    abort.abort();
    await assert.rejects(fix, (e: unknown) => e instanceof JobFailure && e.code === 'cancelled');
    assert.deepEqual(readdirSync(dir), ['hang-writing.onnx']);
    // The server goes on: the next fix runs on a fresh thread.
    const other = join(dir, 'hang.onnx');
    writeFileSync(other, 'another model');
    const next = await svc.fix(pathToFileURL(other).href, 'bnp');
    assert.deepEqual(next.outputs, [pathToFileURL(join(dir, 'hang.purified.onnx')).href]);
  });
});
