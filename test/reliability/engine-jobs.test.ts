/**
 * The server's engine jobs release the onnxruntime sessions they compile when they end, finished
 * or cancelled: a long-lived server that scans many models must not keep one set per model.
 */
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { EngineJobs } from '../../server/src/worker/engine-jobs';
import type { ScanSettings } from '../../server/src/settings';
import { fmnist, tempDir } from '../helpers';

const settings: ScanSettings = { data: join(fmnist.data, 'clean.npz'), methods: ['pairs', 'bnp'], methodOptions: { pairs: { imagesPerClass: 10, maxSteps: 30 } } };

describe('engine jobs and their sessions', () => {
  const jobs = new EngineJobs();
  after(() => jobs.dispose());
  const model = join(tempDir(), 'model.onnx');
  copyFileSync(join(fmnist.badnets, 'model.onnx'), model);

  test('a scan job compiles sessions while it runs and holds none once it is done', async () => {
    let most = 0;
    const result = await jobs.run({ kind: 'scan', path: model, settings }, { signal: new AbortController().signal, progress: () => (most = Math.max(most, jobs.cachedSessions)) });
    assert.equal(result.kind, 'scan');
    assert.ok(most > 0, 'sessions were compiled while it ran');
    assert.equal(jobs.cachedSessions, 0);
  });

  test('a scan job cancelled inside the trigger reversal holds none either', async () => {
    const abort = new AbortController();
    let held = 0;
    const progress = (_: number, stage: string) => {
      if (!abort.signal.aborted && /^Trigger reversal step \d+/.test(stage)) {
        held = jobs.cachedSessions;
        abort.abort();
      }
    };
    await assert.rejects(jobs.run({ kind: 'scan', path: model, settings: { ...settings, methods: ['pairs'] } }, { signal: abort.signal, progress }));
    assert.ok(held > 0, 'it was cancelled with sessions open');
    assert.equal(jobs.cachedSessions, 0);
  });

  test('a method option no method declares fails the job, naming where it was set and the known keys', async () => {
    const bad = { ...settings, methodOptions: { pairs: { imagesPerClas: 10 } }, configPath: '/w/backdoor-lens.json' };
    await assert.rejects(jobs.run({ kind: 'scan', path: model, settings: bad }, { signal: new AbortController().signal, progress: () => {} }), (e: Error & { code?: string }) =>
      e.code === 'usage' && /unknown option 'pairs\.imagesPerClas'; pairs takes .*imagesPerClass.* \(backdoorLens\.methodOptions or \/w\/backdoor-lens\.json\)/.test(e.message));
  });
});
