/**
 * Limits and fixes through the language server over stdio: a scan stopped by its time limit or a
 * model over the size limit gives one BL040 diagnostic saying which limit and where, and the server
 * goes on answering; two fixes of one file at once both succeed with distinct, whole outputs and
 * the input unchanged; a fix cancelled midway leaves the folder as it was; the debug memory request
 * answers.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import { DiagnosticSeverity, ExecuteCommandRequest, LSPErrorCodes, ResponseError, type Diagnostic } from 'vscode-languageserver-protocol';
import { loadModel } from '../../engine';
import { DebugMemoryRequest, FixRequest, OutlineRequest, ReportRequest, ScanRequest, ServerCommands, type FixSummary } from '../../protocol/lsp';
import { fileSha256, fmnist, tempDir } from '../helpers';
import { fileUri, startClient, type TestClient } from '../server/lsp-client';

/** As in the server tests: trigger reversal and BNP on 20 images per class, seconds rather than minutes. */
const quickScan = { methods: ['pairs', 'bnp'], methodOptions: { pairs: { imagesPerClass: 20, maxSteps: 60 } } };

const text = (d: Diagnostic) => (typeof d.message === 'string' ? d.message : d.message.value);

/** One folder per case, each with its own backdoor-lens.json. */
function workspace() {
  const dir = tempDir('bl-reliability-');
  mkdirSync(join(dir, 'data'));
  copyFileSync(join(fmnist.data, 'clean.npz'), join(dir, 'data', 'clean.npz'));
  const folder = (name: string, config: object) => {
    mkdirSync(join(dir, name));
    copyFileSync(join(fmnist.badnets, 'model.onnx'), join(dir, name, 'model.onnx'));
    writeFileSync(join(dir, name, 'backdoor-lens.json'), JSON.stringify({ data: '../data/clean.npz', ...config }));
    return join(dir, name, 'model.onnx');
  };
  return {
    dir,
    quick: folder('quick', quickScan),
    // The trigger reversal takes tens of seconds; three seconds stop it inside.
    slow: folder('slow', { methods: ['pairs'], timeLimitSeconds: 3 }),
    big: folder('big', { methods: ['bnp'], limits: { maxModelBytes: 100_000 } }),
  };
}

/** Resolves once the job on this token reports a stage inside an analysis or a fix method, not queued or loading. */
async function working(client: TestClient, token: string): Promise<void> {
  for (let i = 0; ; i++) {
    const values = client.progress.get(token) ?? [];
    // Stages read "<method title>: <step>" ("Scanning first: Trigger reversal step 3/900 …", "Channel Lipschitzness (CLP): …").
    if (values.some((p) => p.kind === 'report' && /^(?!Loading|queued)[^:]+: \S/.test(p.message ?? ''))) return;
    if (values.some((p) => p.kind === 'end')) throw new Error(`the job on ${token} ended before it got going`);
    if (i > 12_000) throw new Error(`no working stage on ${token}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// A guard against a hang, sized for a loaded 2-core machine: there the two fixes and their rescans alone took 8 minutes.
describe('limits and fixes through the language server', { timeout: 1_800_000 }, () => {
  const ws = workspace();
  let client: TestClient;

  before(async () => {
    client = await startClient({ workspace: ws.dir, settings: {} });
  });
  after(() => client?.stop());

  test('a scan reaching its time limit: BL040 naming the stage, not a warning (the file was not judged), and the server goes on answering', async () => {
    const uri = fileUri(ws.slow);
    const summary = await client.connection.sendRequest(ScanRequest, { uri, workDoneToken: 'slow' });
    assert.equal(summary.status, 'failed');
    assert.match(summary.message, /^scan stopped: time limit 3 s reached during trigger reversal step \d+\/\d+ .*; raise timeLimitSeconds/);
    assert.equal((client.progress.get('slow') ?? []).at(-1)?.kind, 'end');
    const [d, ...more] = await client.waitForDiagnostics(uri, (x) => x.length > 0);
    assert.equal(more.length, 0);
    assert.equal(d.code, 'BL040');
    // Not judged, so not a warning: the Explorer marks the file with its own "not scanned" decoration.
    assert.equal(d.severity, DiagnosticSeverity.Information);
    assert.match(text(d), /^Scan stopped: time limit 3 s reached during trigger reversal step \d+\/\d+( \(.*\)|…); raise timeLimitSeconds$/);
    assert.doesNotMatch(text(d), /\n\s+at /);
    const view = await client.connection.sendRequest(ReportRequest, { uri });
    assert.equal(view.status, 'failed');
    assert.equal(view.message, summary.message);

    // Still serving: the outline of the same model, and a full scan of another.
    assert.match(await client.connection.sendRequest(OutlineRequest, { uri }), /^conv1\b/m);
    const quick = await client.connection.sendRequest(ScanRequest, { uri: fileUri(ws.quick) });
    assert.equal(quick.status, 'done', quick.message);
    assert.equal(quick.verdict, 'backdoored');
  });

  test('a model over limits.maxModelBytes: BL040 naming its size, the limit and the setting', async () => {
    const uri = fileUri(ws.big);
    const summary = await client.connection.sendRequest(ScanRequest, { uri });
    assert.equal(summary.status, 'failed');
    const [d] = await client.waitForDiagnostics(uri, (x) => x.length > 0);
    assert.equal(d.code, 'BL040');
    assert.match(text(d), /^Scan stopped: model\.onnx is 217\.\d KiB, over the model size limit of 97\.7 KiB; raise limits\.maxModelBytes/);
    // The exact size stays in the scan's answer (and the log).
    assert.ok(summary.message.includes(`(${statSync(ws.big).size} bytes)`), summary.message);
  });

  test('two applyFix commands for one model at once: both succeed, with distinct whole outputs, and the input is unchanged', async () => {
    const input = fileSha256(ws.quick);
    const folder = join(ws.dir, 'quick');
    const fix = () => client.connection.sendRequest(ExecuteCommandRequest.type, { command: ServerCommands.applyFix, arguments: [{ uri: fileUri(ws.quick), method: 'bnp' }] }) as Promise<FixSummary>;
    const [a, b] = await Promise.all([fix(), fix()]);
    assert.equal(a.outcome, b.outcome, 'the same fix of the same model');
    const label = a.outcome === 'removed' ? 'purified' : `bnp-${a.outcome}`;
    const outputs = [...a.outputs, ...b.outputs].map((u) => fileURLToPath(u)).sort();
    assert.deepEqual(outputs, [join(folder, `model.${label}-2.onnx`), join(folder, `model.${label}.onnx`)]);
    for (const out of outputs) assert.ok((await loadModel(out)).onnx.graph.initializer.length > 0, `${out} is a whole model`);
    assert.equal(fileSha256(ws.quick), input);
    assert.deepEqual(readdirSync(folder).sort(), ['backdoor-lens.json', 'model.onnx', `model.${label}-2.onnx`, `model.${label}.onnx`].sort());
  });

  test('the debug memory request reports the process and its worker thread', async () => {
    const m = await client.connection.sendRequest(DebugMemoryRequest);
    assert.ok(m.rss > m.heapUsed && m.heapUsed > 0, JSON.stringify(m));
    // Started without --expose-gc, it cannot collect first, and says so.
    assert.equal(m.collected, false);
    assert.ok(m.worker && m.worker.heapUsed > 0, 'the engine worker answered');
    assert.equal(m.workerStarts, 1, 'no job so far needed its thread terminated');
  });

  test('a fix cancelled midway leaves nothing in the folder: no output, no temporary file', async () => {
    const folder = join(ws.dir, 'quick');
    const listing = readdirSync(folder).sort();
    const cts = new CancellationTokenSource();
    const fix = client.connection.sendRequest(FixRequest, { uri: fileUri(ws.quick), method: 'clp', workDoneToken: 'fix-cancel' }, cts.token);
    await working(client, 'fix-cancel');
    cts.cancel();
    await assert.rejects(fix, (e: unknown) => e instanceof ResponseError && e.code === LSPErrorCodes.RequestCancelled);
    assert.equal((client.progress.get('fix-cancel') ?? []).at(-1)?.kind, 'end');
    assert.deepEqual(readdirSync(folder).sort(), listing);
    // And the server goes on: the report of the model it was fixing.
    assert.equal((await client.connection.sendRequest(ReportRequest, { uri: fileUri(ws.quick) })).status, 'done');
  });
});
