import assert from 'node:assert/strict';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { JobQueue } from '../../server/src/jobs/queue';
import { JobFailure, WorkerHost } from '../../server/src/jobs/worker-host';
import type { JobRequest } from '../../server/src/jobs/messages';

const fake = join(__dirname, 'fixtures', 'fake-worker.mjs');
const job = (path: string): JobRequest => ({ kind: 'describe', path, settings: {} });
const isCancelled = (e: unknown) => e instanceof JobFailure && e.code === 'cancelled';

describe('worker host', () => {
  const host = new WorkerHost(fake, { graceMs: 300 });
  after(() => host.dispose());

  test('runs a job and relays its progress, with the step the log names', async () => {
    const stages: string[] = [];
    const steps: (string | undefined)[] = [];
    const r = await host.run(job('sleep:100'), { onProgress: (_, s, step) => (stages.push(s), steps.push(step)) });
    assert.equal(r.kind, 'describe');
    assert.ok(stages.length >= 2 && stages[0] === 'step 1', stages.join(','));
    assert.deepEqual(steps.slice(0, 2), ['s1', 's2']);
  });

  test('a cancelled job that reaches an abort check ends as cancelled, and the thread is kept', async () => {
    const abort = new AbortController();
    const p = host.run(job('sleep:10000'), { signal: abort.signal, onProgress: () => abort.abort() });
    await assert.rejects(p, isCancelled);
    assert.equal((await host.run(job('ok'))).kind, 'describe');
  });

  test('a job deaf to the cancel ends as cancelled after the grace period; the next job gets a fresh thread', async () => {
    const abort = new AbortController();
    const started = Date.now();
    const p = host.run(job('busy:3000'), { signal: abort.signal });
    setTimeout(() => abort.abort(), 50);
    await assert.rejects(p, isCancelled);
    assert.ok(Date.now() - started < 2500, 'did not wait for the blocked job to finish');
    const r = await host.run(job('ok'));
    assert.equal((r as { outline: { path: string } }).outline.path, 'ok');
  });

  test('a crashed worker fails its job with an internal error and is replaced', async () => {
    await assert.rejects(host.run(job('crash')), (e: unknown) => e instanceof JobFailure && e.code === 'internal' && /worker stopped/.test(e.message));
    assert.equal((await host.run(job('ok'))).kind, 'describe');
  });
});

test('the worker is started below the server\'s priority, and the log says at which (or why not)', async () => {
  const lines: string[] = [];
  const host = new WorkerHost(fake, { graceMs: 300, log: (line) => lines.push(line) });
  try {
    await host.run(job('ok'));
    assert.equal(lines.length, 1, lines.join('\n'));
    const m = /^engine worker started \(pid (\d+), nice (\d+): below the language server/.exec(lines[0]) ?? /^engine worker started \(pid (\d+)\) at the language server's priority: lowering it was refused \(.+\)$/.exec(lines[0]);
    assert.ok(m, lines[0]);
    if (m[2] !== undefined) assert.equal(getPriority(Number(m[1])), Number(m[2]));
  } finally {
    await host.dispose();
  }
});

describe('job queue', () => {
  const host = new WorkerHost(fake, { graceMs: 300 });
  const queue = new JobQueue(host);
  after(() => host.dispose());

  test('runs jobs one at a time in order', async () => {
    const order: string[] = [];
    const run = (p: string) => queue.run(job(p), { onStart: () => order.push(`start ${p}`) }).then(() => order.push(`end ${p}`));
    await Promise.all([run('sleep:80'), run('sleep:10'), run('ok')]);
    assert.deepEqual(order, ['start sleep:80', 'end sleep:80', 'start sleep:10', 'end sleep:10', 'start ok', 'end ok']);
  });

  test('a job cancelled while waiting never starts', async () => {
    const abort = new AbortController();
    let started = false;
    const first = queue.run(job('sleep:150'));
    const second = queue.run(job('ok'), { signal: abort.signal, onStart: () => (started = true) });
    abort.abort();
    await assert.rejects(second, isCancelled);
    await first;
    assert.equal(started, false);
    assert.equal(queue.length, 0);
  });
});
