/**
 * The language server end to end over stdio with a real JSON-RPC client: the BadNets fixture is
 * scanned, its diagnostics, lenses, hovers and quick fixes checked against the report the scan
 * produced, a fix is applied and its output rescanned, a scan is cancelled midway, and broken input
 * is survived.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import {
  CodeActionRequest,
  CodeLensRequest,
  DiagnosticSeverity,
  DidChangeWatchedFilesNotification,
  FileChangeType,
  HoverRequest,
  LSPErrorCodes,
  ResponseError,
  type CodeAction,
  type Diagnostic,
} from 'vscode-languageserver-protocol';
import { FixRequest, OutlineRequest, ReportRequest, ScanRequest, ServerCommands } from '../../protocol/lsp';
import { fileSha256, fmnist, root, tempDir } from '../helpers';
import { fileUri, startClient, type TestClient } from './lsp-client';

const text = (d: Diagnostic) => (typeof d.message === 'string' ? d.message : d.message.value);
const outlineOf = (path: string) => `backdoor-lens-outline:${new URL(fileUri(path)).pathname}.outline`;

/** Resolves once the scan on this progress token reports a stage inside an analysis ("Trigger reversal step 40/1500 …"), not loading. */
async function inAnalysis(client: TestClient, token: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(client.progress.get(token) ?? []).some((p) => p.kind === 'report' && !!p.message && !/^(queued|Starting|Loading|No data)/.test(p.message))) {
    if ((client.progress.get(token) ?? []).some((p) => p.kind === 'end')) throw new Error(`the scan on ${token} ended before reaching an analysis`);
    if (Date.now() > deadline) throw new Error(`no analysis stage on ${token} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const quickScan = { methods: ['pairs', 'bnp'], methodOptions: { pairs: { imagesPerClass: 20, maxSteps: 60 } } };

function workspace(): { dir: string; model: string } {
  const dir = tempDir('bl-server-');
  mkdirSync(join(dir, 'badnets'));
  mkdirSync(join(dir, 'data'));
  copyFileSync(join(fmnist.badnets, 'model.onnx'), join(dir, 'badnets', 'model.onnx'));
  for (const f of ['clean.npz', 'triggered.npz']) copyFileSync(join(fmnist.data, f), join(dir, 'data', f));
  // Trigger reversal and BNP on 20 images per class: what the acceptance needs, in seconds rather than minutes.
  writeFileSync(join(dir, 'backdoor-lens.json'), JSON.stringify(quickScan, null, 2));
  return { dir, model: join(dir, 'badnets', 'model.onnx') };
}

describe('language server over stdio', { timeout: 600_000 }, () => {
  const ws = workspace();
  const uri = fileUri(ws.model);
  let client: TestClient;

  before(async () => {
    client = await startClient({ workspace: ws.dir, settings: { data: 'data/clean.npz', triggeredData: 'data/triggered.npz' } });
  });
  after(() => client?.stop());

  test('initialize announces hovers, lenses, quick fixes and the server commands', () => {
    const caps = client.initializeResult.capabilities;
    assert.equal(caps.hoverProvider, true);
    assert.ok(caps.codeLensProvider);
    assert.deepEqual((caps.codeActionProvider as { codeActionKinds: string[] }).codeActionKinds, ['quickfix']);
    assert.deepEqual(caps.executeCommandProvider?.commands, [ServerCommands.scan, ServerCommands.applyFix]);
    assert.equal(client.initializeResult.serverInfo?.name, 'backdoor-lens');
  });

  test('a scan of the BadNets model reports progress and publishes diagnostics with the codes and ranges of its report', async () => {
    const summary = await client.connection.sendRequest(ScanRequest, { uri, workDoneToken: 'scan-1' });
    const progress = client.progress.get('scan-1') ?? [];
    assert.equal(progress[0]?.kind, 'begin');
    assert.equal((progress[0] as { cancellable?: boolean }).cancellable, true);
    assert.ok(progress.some((p) => p.kind === 'report' && p.message), 'stage text reported');
    assert.equal(progress.at(-1)?.kind, 'end');
    const percents = progress.filter((p) => p.kind === 'report').map((p) => (p as { percentage?: number }).percentage ?? 0);
    assert.deepEqual(percents, [...percents].sort((a, b) => a - b), 'percentage never goes back');

    const view = await client.connection.sendRequest(ReportRequest, { uri });
    const report = view.report!;
    assert.equal(view.status, 'done');
    assert.equal(summary.status, 'done');
    assert.deepEqual(summary.codes, report.findings.map((f) => f.code));

    // The BadNets fixture has a 3×3 white patch sending everything to class 0.
    assert.equal(report.verdict, 'backdoored');
    assert.ok(report.targets.includes(0), `targets ${report.targets}`);
    const onFile = await client.waitForDiagnostics(uri, (d) => d.length > 0);
    assert.equal(onFile.length, 1, 'one summary on the checkpoint');
    assert.equal(onFile[0].severity, DiagnosticSeverity.Error);
    assert.equal(onFile[0].code, 'BL003');
    assert.match(text(onFile[0]), /target class 0/);

    const outline = (await client.connection.sendRequest(OutlineRequest, { uri })).split('\n');
    // A neuron method's summary that flagged nothing says nothing in the editor; everything else is shown.
    const neuronMethods = new Set(report.neurons.map((n) => n.method));
    const shown = report.findings.filter((f) => !(neuronMethods.has(f.method) && !f.location?.layer && f.severity === 'information' && !report.neurons.some((n) => n.method === f.method && n.flagged)));
    const onOutline = await client.waitForDiagnostics(outlineOf(ws.model), (d) => d.length === shown.length);
    onOutline.forEach((d, i) => {
      const f = shown[i];
      assert.equal(d.code, f.code);
      // With a detected backdoor every finding keeps the engine's severity.
      assert.equal(d.severity, { error: 1, warning: 2, information: 3 }[f.severity]);
      assert.ok(text(d).length <= 120, `one line of at most 120 characters: ${text(d)}`);
      const line = outline[d.range.start.line];
      if (f.location?.layer) assert.ok(line.startsWith(f.location.layer), `${f.code} on '${line}', expected layer ${f.location.layer}`);
      else assert.match(line, /^verdict: BACKDOORED/);
      assert.equal(d.range.end.character, line.length);
      assert.ok(existsSync(new URL(d.codeDescription!.href)), `docs page for ${d.code}`);
    });
    assert.ok(onOutline.some((d) => d.severity === DiagnosticSeverity.Error), 'the backdoor finding is an error');
  });

  test('a second scan of the same content answers from the cache', async () => {
    const again = await client.connection.sendRequest(ScanRequest, { uri });
    assert.equal(again.cached, true);
    assert.equal(again.verdict, 'backdoored');
  });

  test('lenses on flagged layers and quick fixes on the backdoor finding follow the report', async () => {
    const view = await client.connection.sendRequest(ReportRequest, { uri });
    const report = view.report!;
    const outlineUri = outlineOf(ws.model);
    const lenses = await client.connection.sendRequest(CodeLensRequest.type, { textDocument: { uri: outlineUri } });
    const outline = (await client.connection.sendRequest(OutlineRequest, { uri })).split('\n');
    const flaggedLayers = new Set(report.neurons.filter((n) => n.flagged).map((n) => `${n.method}:${n.layer}`));
    const layerLenses = (lenses ?? []).filter((l) => / neurons? flagged/.test(l.command?.title ?? ''));
    assert.equal(layerLenses.length, flaggedLayers.size);
    for (const l of layerLenses) {
      const [, method, count] = /^([A-Z]+): (\d+) neurons? flagged/.exec(l.command!.title)!;
      const layer = outline[l.range.start.line].split(/\s+/)[0];
      const flagged = report.neurons.filter((n) => n.flagged && n.layer === layer && n.method === method.toLowerCase()).map((n) => n.channel).sort((a, b) => a - b);
      assert.equal(Number(count), flagged.length);
      // The lens names the channels it prunes, in its own layer, and asks the fix for exactly that layer.
      if (l.command!.command) {
        assert.ok(l.command!.title.endsWith(`— Prune ${layer} channel${flagged.length === 1 ? '' : 's'} ${flagged.join(', ')}`), l.command!.title);
        assert.deepEqual(l.command!.arguments, [{ uri, method: method.toLowerCase(), layer }]);
      }
    }
    const error = client.diagnostics.get(outlineUri)!.find((d) => d.severity === DiagnosticSeverity.Error)!;
    const actions = (await client.connection.sendRequest(CodeActionRequest.type, { textDocument: { uri: outlineUri }, range: error.range, context: { diagnostics: [error] } })) as CodeAction[];
    // Offered: Repair (auto) first and preferred, the trigger fixes for the detected target, then pruning by each method that flagged channels; nothing else.
    const flaggedBy = new Set(report.neurons.filter((n) => n.flagged).map((n) => n.method));
    const methods = actions.map((a) => (a.command?.arguments?.[0] as { method: string }).method);
    const triggerFixes = ['bna', 'unlearn', 'adv-unlearn'];
    assert.equal(methods[0], 'auto');
    assert.match(actions[0].title, /^Repair \(each fix, keep the best\) for target 0 — est\. ~\d+ (s|min)$/);
    assert.equal(actions[0].isPreferred, true);
    assert.ok(methods.includes('bna'), `BNA offered: ${methods}`);
    for (const m of methods.slice(1)) assert.ok(triggerFixes.includes(m) || flaggedBy.has(m), `${m} offered though it flagged nothing: ${actions.map((a) => a.title)}`);
    for (const a of actions.filter((_, i) => i > 0 && !triggerFixes.includes(methods[i]))) assert.match(a.title, /^Prune with [A-Z]+ \(\d+ flagged channels? in .+\) — est\. ~\d+ (s|min)$/);
    assert.ok(!methods.includes('clp'), 'CLP did not run, so it is not offered');
    assert.equal(actions.filter((a) => a.isPreferred).length, 1);
  });

  test('hovers answer while a scan runs', async (t) => {
    const outlineUri = outlineOf(ws.model);
    const bn = (await client.connection.sendRequest(OutlineRequest, { uri })).split('\n').findIndex((l) => l.startsWith('bn3'));
    let scanDone = false;
    const cts = new CancellationTokenSource();
    const scan = client.connection.sendRequest(ScanRequest, { uri, force: true, workDoneToken: 'scan-busy' }, cts.token).finally(() => (scanDone = true));
    // Wait until the worker is inside an analysis, not merely loading.
    await inAnalysis(client, 'scan-busy');
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const hover = await client.connection.sendRequest(HoverRequest.type, { textDocument: { uri: outlineUri }, position: { line: bn, character: 1 } });
      latencies.push(performance.now() - t0);
      assert.match((hover?.contents as { value: string }).value, /\*\*bn3\*\*/);
    }
    assert.equal(scanDone, false, 'the scan was still running while every hover was answered');
    t.diagnostic(`hover latency during a scan: ${latencies.map((x) => x.toFixed(1)).join(', ')} ms`);
    // No need to sit through the rest of it.
    cts.cancel();
    await assert.rejects(scan, (e: unknown) => e instanceof ResponseError && e.code === LSPErrorCodes.RequestCancelled);
  });

  test('a fix writes beside the input, named for its outcome, never over a file; its rescan agrees with the outcome', async () => {
    const before = fileSha256(ws.model);
    const fix = await client.connection.sendRequest(FixRequest, { uri, method: 'bna', workDoneToken: 'fix-1' });
    const label = fix.outcome === 'removed' ? 'corrected' : `bna-${fix.outcome}`;
    const out = join(ws.dir, 'badnets', `model.${label}.onnx`);
    assert.deepEqual(fix.outputs, [fileUri(out)]);
    assert.ok(existsSync(out));
    assert.equal(fileSha256(ws.model), before, 'the input is untouched');
    assert.ok(fix.before.asr !== null && fix.after.asr !== null && fix.after.asr < fix.before.asr, `ASR ${fix.before.asr} → ${fix.after.asr}`);
    assert.match(fix.headline, new RegExp(`^bna: ${fix.outcome} — `));
    assert.ok(fix.attacks.some((a) => /^true trigger \(triggered\.npz, target class 0 \(detected\)\)$/.test(a.what)), JSON.stringify(fix.attacks));
    assert.ok((client.progress.get('fix-1') ?? []).some((p) => p.kind === 'report'));

    const rescan = await client.connection.sendRequest(ScanRequest, { uri: fix.outputs[0] });
    // The rescan agrees with the fix: a removal rescans clean (it is the fix's own confirming scan), anything else still backdoored.
    assert.equal(rescan.verdict === 'backdoored', fix.outcome !== 'removed', `${fix.headline} / ${rescan.message}`);
    if (fix.outcome === 'removed') assert.equal(rescan.cached, true, "served from the fix's confirming rescan");
    // The file watcher reports the new file as created: that must not drop what the fix recorded.
    await client.connection.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: fix.outputs[0], type: FileChangeType.Created }] });
    const fixedView = await client.connection.sendRequest(ReportRequest, { uri: fix.outputs[0] });
    assert.equal(fixedView.fix?.method, 'bna');
    assert.equal(fixedView.report?.verdict, rescan.verdict);
    assert.equal(fixedView.report?.repair?.method, 'bna', 'the report shows the fix record side by side');

    const second = await client.connection.sendRequest(FixRequest, { uri, method: 'bna' });
    assert.deepEqual(second.outputs, [fileUri(join(ws.dir, 'badnets', `model.${second.outcome === 'removed' ? 'corrected' : `bna-${second.outcome}`}${second.outcome === fix.outcome ? '-2' : ''}.onnx`))]);
  });

  test('a scan cancelled midway ends cleanly and keeps the previous results', async () => {
    const cts = new CancellationTokenSource();
    const scan = client.connection.sendRequest(ScanRequest, { uri, force: true, workDoneToken: 'scan-cancel' }, cts.token);
    await inAnalysis(client, 'scan-cancel');
    const t0 = Date.now();
    cts.cancel();
    await assert.rejects(scan, (e: unknown) => e instanceof ResponseError && e.code === LSPErrorCodes.RequestCancelled);
    assert.ok(Date.now() - t0 < 5000, 'cancellation took effect promptly');
    assert.equal((client.progress.get('scan-cancel') ?? []).at(-1)?.kind, 'end');
    const view = await client.connection.sendRequest(ReportRequest, { uri });
    assert.equal(view.status, 'done');
    assert.equal(view.report?.verdict, 'backdoored');
    const next = await client.connection.sendRequest(ScanRequest, { uri });
    assert.equal(next.cached, true, 'the server goes on serving');
  });

  test('a corrupted checkpoint gives one clear diagnostic and the server keeps serving', async () => {
    const broken = join(ws.dir, 'badnets', 'broken.onnx');
    writeFileSync(broken, Buffer.concat([readFileSync(ws.model).subarray(0, 3000), Buffer.from('not the rest of a model')]));
    const summary = await client.connection.sendRequest(ScanRequest, { uri: fileUri(broken) });
    assert.equal(summary.status, 'failed');
    const d = await client.waitForDiagnostics(fileUri(broken), (x) => x.length > 0);
    assert.equal(d.length, 1);
    assert.equal(d[0].code, 'BL050');
    // Not judged, so not the red of a detected backdoor; the editor gives it a decoration of its own.
    assert.equal(d[0].severity, DiagnosticSeverity.Information);
    assert.match(text(d[0]), /^Could not be scanned: /);
    assert.doesNotMatch(text(d[0]), /\n\s+at /, 'no stack trace');
    const again = await client.connection.sendRequest(ScanRequest, { uri });
    assert.equal(again.status, 'done');
  });

  test('a checkpoint that would run code when unpickled is refused with its finding, not loaded', async () => {
    const evil = join(ws.dir, 'exec.pt');
    copyFileSync(join(root, 'fixtures/pickles/exec.pt'), evil);
    const summary = await client.connection.sendRequest(ScanRequest, { uri: fileUri(evil) });
    assert.equal(summary.status, 'done');
    assert.ok(summary.codes.includes('BL030'), summary.codes.join());
    const d = await client.waitForDiagnostics(fileUri(evil), (x) => x.length > 0);
    assert.equal(d[0].code, 'BL030');
    assert.equal(d[0].severity, DiagnosticSeverity.Error);
    assert.equal((await client.connection.sendRequest(ReportRequest, { uri: fileUri(evil) })).fixes.length, 0);
  });

  test('a state_dict checkpoint: a fix writes the purified .onnx and the weights under their original keys', async () => {
    // Its own folder, whose backdoor-lens.json (overriding the editor settings) asks for BNP only: quick.
    mkdirSync(join(ws.dir, 'statedict'));
    writeFileSync(join(ws.dir, 'statedict', 'backdoor-lens.json'), JSON.stringify({ data: '../data/clean.npz', methods: ['bnp'] }));
    const pt = join(ws.dir, 'statedict', 'state.pt');
    copyFileSync(join(fmnist.badnets, 'model.pt'), pt);
    const scanned = await client.connection.sendRequest(ScanRequest, { uri: fileUri(pt) });
    assert.equal(scanned.status, 'done');
    const view = await client.connection.sendRequest(ReportRequest, { uri: fileUri(pt) });
    assert.equal(view.report?.model.format, 'pytorch');
    assert.deepEqual(view.report?.methods.map((m) => m.method), ['bnp']);
    // Pruning changes weights only, so the state_dict can carry it; BNP's flags leave this backdoor, and the names say so.
    const fix = await client.connection.sendRequest(FixRequest, { uri: fileUri(pt), method: 'bnp' });
    const stem = join(ws.dir, 'statedict', `state.${fix.outcome === 'removed' ? 'purified' : `bnp-${fix.outcome}`}`);
    assert.deepEqual(fix.outputs, [fileUri(`${stem}.onnx`), fileUri(`${stem}.safetensors`)]);
    const st = readFileSync(`${stem}.safetensors`);
    const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString('utf8'));
    assert.ok('conv1.weight' in header && 'fc.bias' in header, Object.keys(header).join());
    const rescan = await client.connection.sendRequest(ScanRequest, { uri: fix.outputs[1] });
    assert.equal(rescan.status, 'done', rescan.message);
  });

  test('a changed checkpoint loses its results; a deleted one too', async () => {
    const copy = join(ws.dir, 'badnets', 'copy.onnx');
    copyFileSync(ws.model, copy);
    await client.connection.sendRequest(ScanRequest, { uri: fileUri(copy) });
    await client.waitForDiagnostics(fileUri(copy), (d) => d.length === 1);
    writeFileSync(copy, Buffer.concat([readFileSync(ws.model), Buffer.from([0])]));
    await client.connection.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: fileUri(copy), type: FileChangeType.Changed }] });
    await client.waitForDiagnostics(fileUri(copy), (d) => d.length === 0);
    assert.equal((await client.connection.sendRequest(ReportRequest, { uri: fileUri(copy) })).status, 'stale');
    assert.deepEqual(client.diagnostics.get(outlineOf(copy)) ?? [], []);

    // Back to the scanned content (a revert): the cached results apply again without a scan.
    copyFileSync(ws.model, copy);
    await client.connection.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: fileUri(copy), type: FileChangeType.Changed }] });
    await client.waitForDiagnostics(fileUri(copy), (d) => d.length === 1);
    assert.equal((await client.connection.sendRequest(ReportRequest, { uri: fileUri(copy) })).status, 'done');

    rmSync(copy);
    await client.connection.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: fileUri(copy), type: FileChangeType.Deleted }] });
    await client.waitForDiagnostics(fileUri(copy), (d) => d.length === 0);
    assert.equal((await client.connection.sendRequest(ReportRequest, { uri: fileUri(copy) })).status, 'not-scanned');
  });
});

describe('backdoor-lens lsp --stdio', () => {
  test('runs the same server', async () => {
    const ws = workspace();
    const client = await startClient({ workspace: ws.dir, args: [join(root, 'bin', 'backdoor-lens.js'), 'lsp', '--stdio'], init: {} });
    try {
      assert.equal(client.initializeResult.serverInfo?.name, 'backdoor-lens');
      const broken = join(ws.dir, 'broken.onnx');
      writeFileSync(broken, 'not a model');
      const summary = await client.connection.sendRequest('workspace/executeCommand', { command: ServerCommands.scan, arguments: [fileUri(broken)] });
      assert.equal((summary as { status: string }).status, 'failed');
      const d = await client.waitForDiagnostics(fileUri(broken), (x) => x.length === 1);
      assert.equal(d[0].code, 'BL050');
    } finally {
      await client.stop();
    }
  });
});
