import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DiagnosticSeverity, type Diagnostic } from 'vscode-languageserver';
import { loadModel } from '../../engine';
import type { NeuronScore, ScanReport } from '../../engine/report/types';
import type { CheckpointState } from '../../server/src/checkpoints';
import { diagnosticsFor } from '../../server/src/features/diagnostics';
import { codeActionsFor, codeLensesFor, fixesFor } from '../../server/src/features/fix-actions';
import { hoverFor } from '../../server/src/features/hover';
import { renderOutline } from '../../server/src/features/outline';
import { fixOutputs, outputLabel } from '../../engine/fixes/output-name';
import { possibleLabels } from '../../server/src/fix-output';
import { JobFailure } from '../../server/src/jobs/worker-host';
import { resolveSettings, settingsKey } from '../../server/src/settings';
import { checkpointPathOfOutline, fileUri, outlineUri, pathOf } from '../../server/src/uris';
import { describeModel } from '../../server/src/worker/describe';
import { fmnist, root, tempDir } from '../helpers';

const badnets = join(fmnist.badnets, 'model.onnx');
/** Diagnostic messages may be markup in LSP 3.18; ours are plain text. */
const text = (d: Diagnostic) => (typeof d.message === 'string' ? d.message : d.message.value);
const options = { outlineDocuments: true, docsBase: fileUri(join(root, 'docs/findings')) };

/** A report as a scan of the BadNets fixture shapes it; the values are the inputs under test. */
function report(over: Partial<ScanReport>): ScanReport {
  return {
    reportVersion: 1,
    tool: { name: 'backdoor-lens', version: '0' },
    createdAt: new Date(0).toISOString(),
    model: { path: badnets, sha256: 'a'.repeat(64), format: 'onnx', input: { name: 'input', dims: ['N', 1, 28, 28] }, numClasses: 10, bn: 'kept' },
    data: null,
    verdict: 'clean',
    evidence: [],
    attackType: null,
    targets: [],
    pairs: [],
    labels: [],
    neurons: [],
    findings: [],
    methods: [],
    timings: { total: 1 },
    artifacts: [],
    seed: 0,
    ...over,
  };
}

const scores = (method: string, layer: string, n: number, flagged: number[]): NeuronScore[] =>
  Array.from({ length: n }, (_, c) => ({ method, layer, channel: c, score: flagged.includes(c) ? 9 : 1, threshold: 5, flagged: flagged.includes(c) }));

describe('model outline', async () => {
  const outline = describeModel(await loadModel(badnets));

  test('one line per layer with op and output shape, the verdict on line 1', () => {
    const r = renderOutline(outline);
    assert.equal(r.summaryLine, 1);
    assert.match(r.lines[1], /^verdict: not scanned yet/);
    for (const layer of ['conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3', 'fc']) {
      const line = r.layerLines.get(layer);
      assert.ok(line !== undefined, layer);
      assert.ok(r.lines[line].startsWith(layer), r.lines[line]);
    }
    assert.match(r.lines[r.layerLines.get('bn1')!], /BatchNormalization\s+\[N, 16, 28, 28\]/);
    assert.match(r.lines[r.layerLines.get('fc')!], /Gemm\s+\[N, 10\]/);
    assert.equal(r.lines.length, 2 + outline.inputs.length + outline.layers.length + outline.outputs.length);
  });

  test('flagged-neuron counts per method on the layer line', () => {
    const r = renderOutline(outline, report({ neurons: [...scores('bnp', 'bn2', 32, [3, 7]), ...scores('clp', 'bn2', 32, [7]), ...scores('bnp', 'bn1', 16, [])] }));
    assert.match(r.lines[r.layerLines.get('bn2')!], /BNP 2\/32 flagged · CLP 1\/32 flagged$/);
    assert.doesNotMatch(r.lines[r.layerLines.get('bn1')!], /flagged/);
  });
});

describe('diagnostics', async () => {
  const outline = describeModel(await loadModel(badnets));
  const state = (r: ScanReport | undefined, patch: Partial<CheckpointState> = {}): CheckpointState => ({
    path: badnets,
    uri: fileUri(badnets),
    status: 'done',
    ...(r ? { outcome: { hash: 'h', settingsKey: 'k', report: r, images: [], outline, fixes: [] } } : {}),
    ...patch,
  });
  const backdoored = report({
    verdict: 'backdoored',
    targets: [0],
    attackType: 'all-to-one',
    neurons: scores('bnp', 'bn3', 64, [5, 9, 11]),
    findings: [
      { severity: 'error', code: 'BL001', message: 'pair 3→0 is an outlier', method: 'pairs', location: { pair: { source: 3, target: 0 } } },
      { severity: 'warning', code: 'BL011', message: '3 channels of bn3 flagged', method: 'bnp', location: { layer: 'bn3', channels: [5, 9, 11] } },
      { severity: 'information', code: 'BL021', message: 'EP skipped: needs mixed data', method: 'ep' },
    ],
  });

  test('a detected backdoor: an error summary on the checkpoint naming the target, each finding on its layer line', () => {
    const r = renderOutline(outline, backdoored);
    const d = diagnosticsFor(state(backdoored), r, options);
    assert.equal(d.checkpoint.length, 1);
    assert.equal(d.checkpoint[0].severity, DiagnosticSeverity.Error);
    assert.equal(d.checkpoint[0].code, 'BL003');
    assert.match(text(d.checkpoint[0]), /target class 0/);
    assert.equal(d.checkpoint[0].relatedInformation?.[0].location.uri, outlineUri(badnets));
    assert.deepEqual(d.outline.map((x) => [x.code, x.severity, x.range.start.line]), [
      ['BL001', DiagnosticSeverity.Error, r.summaryLine],
      ['BL011', DiagnosticSeverity.Warning, r.layerLines.get('bn3')],
      ['BL021', DiagnosticSeverity.Information, r.summaryLine],
    ]);
    for (const x of [...d.checkpoint, ...d.outline]) assert.equal(x.codeDescription?.href, `${options.docsBase}/${x.code}.md`);
  });

  test('a rescan in progress keeps the previous results on show', () => {
    const d = diagnosticsFor(state(backdoored, { status: 'scanning' }), renderOutline(outline, backdoored), options);
    assert.equal(d.checkpoint[0]?.code, 'BL003');
    assert.equal(d.outline.length, 3);
    assert.deepEqual(diagnosticsFor(state(backdoored, { status: 'stale' }), renderOutline(outline, backdoored), options).checkpoint, []);
  });

  test('without outline documents every finding goes on the checkpoint', () => {
    const d = diagnosticsFor(state(backdoored), renderOutline(outline, backdoored), { ...options, outlineDocuments: false });
    assert.equal(d.outline.length, 0);
    assert.deepEqual(d.checkpoint.map((x) => x.code), ['BL003', 'BL001', 'BL011', 'BL021']);
  });

  test('flagged neurons without a detected trigger: a warning summary', () => {
    const r = report({ verdict: 'clean', neurons: scores('bnp', 'bn3', 64, [5]), findings: [backdoored.findings[1]] });
    const d = diagnosticsFor(state(r), renderOutline(outline, r), options);
    assert.equal(d.checkpoint[0].severity, DiagnosticSeverity.Warning);
    assert.match(text(d.checkpoint[0]), /1 neuron flagged in model\.onnx \(BNP\), no trigger detected/);
  });

  test('a clean verdict with nothing flagged publishes nothing', () => {
    const r = report({ verdict: 'clean' });
    const d = diagnosticsFor(state(r), renderOutline(outline, r), options);
    assert.deepEqual([d.checkpoint, d.outline], [[], []]);
  });

  test('a scan that could not run: one error (BL050) naming the problem; a time limit: BL040 warning', () => {
    const failed = diagnosticsFor(state(undefined, { status: 'failed', failure: new JobFailure('bad-file', 'is truncated', badnets) }), undefined, options);
    assert.equal(failed.checkpoint.length, 1);
    assert.equal(failed.checkpoint[0].code, 'BL050');
    assert.equal(failed.checkpoint[0].severity, DiagnosticSeverity.Error);
    assert.match(text(failed.checkpoint[0]), /could not be scanned: is truncated/);
    const limited = diagnosticsFor(state(undefined, { status: 'failed', failure: new JobFailure('limit', 'scan stopped: time limit 5 s reached during pairs') }), undefined, options);
    assert.equal(limited.checkpoint[0].code, 'BL040');
    assert.equal(limited.checkpoint[0].severity, DiagnosticSeverity.Warning);
  });

  test('hover on a layer line shows its statistics per method', () => {
    const r = renderOutline(outline, backdoored);
    const h = hoverFor(r.layerLines.get('bn3')!, r, backdoored);
    const value = (h!.contents as { value: string }).value;
    assert.match(value, /\*\*bn3\*\* — `BatchNormalization` \[N, 64, 14, 14\]/);
    assert.match(value, /\| BNP \| 64 \| 3 \| 1\.000 \| 1\.375 \| 9\.000 \| 5\.000 \|/);
    assert.match(value, /#5 \(9\.000\), #9 \(9\.000\), #11 \(9\.000\)/);
  });
});

describe('fix actions and lenses', () => {
  const fixes = [
    { id: 'bnp', title: 'BNP' },
    { id: 'clp', title: 'CLP' },
    { id: 'bna', title: 'BNA' },
    { id: 'ep', title: 'EP', notApplicable: "needs a possibly poisoned data set (dataKind 'mixed')" },
  ];
  const diag = (code: string, severity: DiagnosticSeverity, method?: string) => ({ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, code, severity, message: '', data: { checkpoint: 'file:///m.onnx', method } });

  test('BNA first for a detected backdoor, the flagging method first for neurons, nothing for a failed scan', () => {
    assert.deepEqual(fixesFor(diag('BL001', DiagnosticSeverity.Error, 'pairs'), fixes).map((f) => f.id), ['bna', 'bnp', 'ep', 'clp']);
    assert.deepEqual(fixesFor(diag('BL010', DiagnosticSeverity.Warning, 'clp'), fixes).map((f) => f.id), ['clp', 'bna', 'bnp', 'ep']);
    assert.deepEqual(fixesFor(diag('BL050', DiagnosticSeverity.Error), fixes), []);
    assert.deepEqual(fixesFor(diag('BL021', DiagnosticSeverity.Information, 'ep'), fixes), []);
  });

  test('code actions: quick fixes naming the fix, a disabled one with its reason, one per fix', () => {
    const state = { path: '/m.onnx', uri: 'file:///m.onnx', status: 'done', fixes } as CheckpointState;
    const actions = codeActionsFor([diag('BL001', DiagnosticSeverity.Error, 'pairs'), diag('BL011', DiagnosticSeverity.Warning, 'bnp')], state, true);
    assert.deepEqual(actions.map((a) => a.title), ['Apply BNA correction', 'Prune with BNP', 'Prune with EP', 'Prune with CLP']);
    assert.equal(actions[0].isPreferred, true);
    assert.deepEqual(actions[0].command?.arguments, [{ uri: 'file:///m.onnx', method: 'bna' }]);
    assert.equal(actions[0].command?.command, 'backdoorLens.applyFix');
    assert.match(actions[2].disabled?.reason ?? '', /mixed/);
    const server = codeActionsFor([diag('BL001', DiagnosticSeverity.Error)], state, false);
    assert.equal(server[0].command?.command, 'backdoorLens.server.applyFix');
  });

  test('lenses: per flagged layer and method, with Prune when that fix exists', () => {
    const r = report({ verdict: 'backdoored', targets: [0], neurons: [...scores('bnp', 'bn3', 64, [1, 2]), ...scores('fp', 'conv3', 64, [4])] });
    const state = { path: '/m.onnx', uri: 'file:///m.onnx', status: 'done', outcome: { report: r, fixes } } as unknown as CheckpointState;
    const lenses = codeLensesFor(state, { summaryLine: 1, layerLines: new Map([['bn3', 12], ['conv3', 11]]) }, true);
    assert.deepEqual(lenses.map((l) => [l.range.start.line, l.command?.title, l.command?.command]), [
      [1, 'Apply BNA correction', 'backdoorLens.applyFix'],
      [1, 'Open report', 'backdoorLens.openReport'],
      [12, 'BNP: 2 neurons flagged — Prune bn3 channels 1, 2', 'backdoorLens.applyFix'],
      [11, 'FP: 1 neuron flagged', ''],
    ]);
  });
});

describe('fix outputs', () => {
  test('<name>.purified.onnx, then -2, -3…; the safetensors twin must be free too', () => {
    const taken = new Set<string>();
    const exists = (p: string) => taken.has(p);
    assert.deepEqual(fixOutputs('/w/model.onnx', 'purified', false, exists), { onnx: '/w/model.purified.onnx' });
    taken.add('/w/model.purified.onnx');
    assert.deepEqual(fixOutputs('/w/model.onnx', 'purified', false, exists), { onnx: '/w/model.purified-2.onnx' });
    taken.add('/w/net.purified.safetensors');
    assert.deepEqual(fixOutputs('/w/net.pt', 'purified', true, exists), { onnx: '/w/net.purified-2.onnx', safetensors: '/w/net.purified-2.safetensors' });
  });

  test('an output is named for what the fix showed: purified (corrected for BNA) only when removed', () => {
    assert.equal(outputLabel('bnp', 'removed'), 'purified');
    assert.equal(outputLabel('bna', 'removed'), 'corrected');
    assert.equal(outputLabel('fp', 'failed'), 'fp-failed');
    assert.equal(outputLabel('unlearn', 'reduced'), 'unlearn-reduced');
    assert.deepEqual(possibleLabels('fp', []), ['purified', 'fp-reduced', 'fp-failed']);
    assert.deepEqual(possibleLabels('auto', ['auto', 'bnp', 'bna']), ['purified', 'bnp-reduced', 'bnp-failed', 'corrected', 'bna-reduced', 'bna-failed']);
  });
});

describe('settings', () => {
  test('backdoor-lens.json beside the model wins over editor settings; editor paths are relative to the workspace', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'models'));
    const model = join(dir, 'models', 'm.onnx');
    writeFileSync(model, '');
    const editor = { data: 'data/clean.npz', threshold: 2, methods: ['bnp'], timeLimitSeconds: 60 };
    assert.deepEqual(resolveSettings(model, editor, dir), { data: join(dir, 'data/clean.npz'), threshold: 2, methods: ['bnp'], timeLimitSeconds: 60 });
    writeFileSync(join(dir, 'models', 'backdoor-lens.json'), JSON.stringify({ data: 'other.npz', threshold: 4 }));
    const s = resolveSettings(model, editor, dir);
    assert.equal(s.data, join(dir, 'models', 'other.npz'));
    assert.equal(s.threshold, 4);
    assert.deepEqual(s.methods, ['bnp']);
    assert.equal(s.configPath, join(dir, 'models', 'backdoor-lens.json'));
  });

  test('an invalid backdoor-lens.json is an error naming the file', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'backdoor-lens.json'), JSON.stringify({ treshold: 3 }));
    assert.throws(() => resolveSettings(join(dir, 'm.onnx'), {}, dir), (e: Error & { file?: string }) => e.file === join(dir, 'backdoor-lens.json') && /unknown setting 'treshold'/.test(e.message));
  });

  test('the cache key changes when the data file changes', () => {
    const dir = tempDir();
    const data = join(dir, 'clean.npz');
    writeFileSync(data, 'a');
    const k1 = settingsKey({ data });
    utimesSync(data, new Date(), new Date(Date.now() + 5000));
    assert.notEqual(settingsKey({ data }), k1);
    assert.notEqual(settingsKey({ data, threshold: 2 }), settingsKey({ data, threshold: 3 }));
  });
});

describe('uris', () => {
  test('outline URIs map back to their checkpoint, also with spaces and an authority part', () => {
    const p = '/tmp/my models/model.onnx';
    const u = outlineUri(p);
    assert.equal(u, 'backdoor-lens-outline:/tmp/my%20models/model.onnx.outline');
    assert.equal(checkpointPathOfOutline(u), p);
    assert.equal(checkpointPathOfOutline('backdoor-lens-outline:///tmp/my%20models/model.onnx.outline'), p);
    assert.equal(pathOf(fileUri(p)), p);
  });
});
