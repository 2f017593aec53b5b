import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DiagnosticSeverity, type Diagnostic } from 'vscode-languageserver';
import { loadModel } from '../../engine';
import type { NeuronScore, ScanReport } from '../../engine/report/types';
import { modelSizeLimitError } from '../../engine/formats/limits';
import type { CheckpointState } from '../../server/src/checkpoints';
import { diagnosticsFor } from '../../server/src/features/diagnostics';
import { codeActionsFor, codeLensesFor, fixesFor } from '../../server/src/features/fix-actions';
import { durationText, fixOffers } from '../../server/src/features/fix-offers';
import type { AvailableFix } from '../../protocol/report-view';
import type { FixSummary } from '../../protocol/lsp';
import { hoverFor } from '../../server/src/features/hover';
import { renderOutline } from '../../server/src/features/outline';
import { fixOutputs, outputLabel } from '../../engine/fixes/output-name';
import { possibleLabels } from '../../server/src/fix-output';
import { JobFailure } from '../../server/src/jobs/worker-host';
import { resolveSettings, settingsKey } from '../../server/src/settings';
import { checkpointPathOfOutline, fileUri, outlineUri, pathOf } from '../../server/src/uris';
import { modelOutline } from '../../engine';
import { fmnist, root, tempDir } from '../helpers';
import { scanReport } from './report-fixture';

const badnets = join(fmnist.badnets, 'model.onnx');
/** Diagnostic messages may be markup in LSP 3.18; ours are plain text. */
const text = (d: Diagnostic) => (typeof d.message === 'string' ? d.message : d.message.value);
const options = { outlineDocuments: true, docsBase: fileUri(join(root, 'docs/findings')) };

/** A report as a scan of the BadNets fixture shapes it; the values are the inputs under test. */
const report = (over: Partial<ScanReport>) => scanReport(over, badnets);

const scores = (method: string, layer: string, n: number, flagged: number[]): NeuronScore[] =>
  Array.from({ length: n }, (_, c) => ({ method, layer, channel: c, score: flagged.includes(c) ? 9 : 1, threshold: 5, flagged: flagged.includes(c) }));

describe('model outline', async () => {
  const outline = modelOutline(await loadModel(badnets));

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
  const outline = modelOutline(await loadModel(badnets));
  const state = (r: ScanReport | undefined, patch: Partial<CheckpointState> = {}): CheckpointState => ({
    path: badnets,
    uri: fileUri(badnets),
    status: 'done',
    ...(r ? { outcome: { hash: 'h', settingsKey: 'k', report: r, images: [], triggers: [], triggersTotal: 0, outline, fixes: [] } } : {}),
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

  test('flagged neurons without a detector verdict are information, the summary too: a clean model is not marked', () => {
    const evidence = [{ method: 'pairs:patch', statistic: 'anomaly index', value: 3.1, threshold: 7, direction: 'above' as const, thresholdSource: 'default', flagged: false, targets: [], attackType: null, summary: '' }];
    const r = report({ verdict: 'clean', data: { path: '/d.npz', n: 4, labelled: true, kind: 'clean' }, evidence, neurons: scores('bnp', 'bn3', 64, [5]), findings: [backdoored.findings[1]] });
    const d = diagnosticsFor(state(r), renderOutline(outline, r), options);
    assert.deepEqual([...d.checkpoint, ...d.outline].map((x) => x.severity), [DiagnosticSeverity.Information, DiagnosticSeverity.Information]);
    assert.equal(text(d.checkpoint[0]), 'No backdoor found — pairs:patch 3.1 ≤ 7; BNP flagged 1 channels (no verdict alone)');
    assert.equal(text(d.outline[0]), 'BNP: 1 of 64 channels of bn3 above the threshold 5 (channel 5)');
  });

  test('no data: an information summary that offers the data picker', () => {
    const r = report({ verdict: 'inconclusive', data: null, findings: [{ severity: 'information', code: 'BL021', message: 'pairs skipped: needs data', method: 'pairs' }] });
    const d = diagnosticsFor(state(r), renderOutline(outline, r), options);
    assert.equal(d.checkpoint[0].severity, DiagnosticSeverity.Information);
    assert.match(text(d.checkpoint[0]), /^Inconclusive: no clean data set, so no detector ran — choose clean data/);
    const actions = codeActionsFor(d.checkpoint, state(r), true);
    assert.deepEqual(actions.map((a) => [a.title, a.command?.command]), [['Choose clean data…', 'backdoorLens.chooseData']]);
    assert.deepEqual(codeActionsFor(d.checkpoint, state(r), false), [], 'other editors have no picker');
  });

  test('messages are one line of at most 120 characters with the numbers', () => {
    const long = { severity: 'warning' as const, code: 'BL014', method: 'fp', message: `Fine-Pruning: 22 of 64 channels of bn3 have a mean activation at or below ${'x'.repeat(300)}`, location: { layer: 'bn3' } };
    const r = report({ verdict: 'backdoored', targets: [0], neurons: scores('fp', 'bn3', 64, Array.from({ length: 22 }, (_, i) => i)), findings: [long] });
    const d = diagnosticsFor(state(r), renderOutline(outline, r), options);
    for (const x of [...d.checkpoint, ...d.outline]) assert.ok(text(x).length <= 120 && !text(x).includes('\n'), text(x));
    assert.match(text(d.outline[0]), /^FP: 22 of 64 channels of bn3 above the threshold 5 \(channels 0, 1, 2, 3, 4, 5, …\)$/);
  });

  test('a clean verdict with nothing flagged publishes nothing', () => {
    const r = report({ verdict: 'clean' });
    const d = diagnosticsFor(state(r), renderOutline(outline, r), options);
    assert.deepEqual([d.checkpoint, d.outline], [[], []]);
  });

  test('a scan that could not run: one diagnostic naming the problem (BL050, BL040 for a limit), not backdoor-red, with the action that unblocks it', () => {
    const failed = diagnosticsFor(state(undefined, { status: 'failed', failure: new JobFailure('bad-file', 'is truncated', badnets) }), undefined, options);
    assert.equal(failed.checkpoint.length, 1);
    assert.equal(failed.checkpoint[0].code, 'BL050');
    assert.equal(failed.checkpoint[0].severity, DiagnosticSeverity.Information);
    assert.equal(text(failed.checkpoint[0]), 'Could not be scanned: model.onnx is truncated');
    assert.deepEqual(codeActionsFor(failed.checkpoint, undefined, true).map((a) => a.command?.command), ['backdoorLens.showLog']);
    const badData = diagnosticsFor(state(undefined, { status: 'failed', failure: new JobFailure('bad-data', 'has no labels', '/w/data.npz') }), undefined, options);
    assert.equal(text(badData.checkpoint[0]), 'Could not be scanned: /w/data.npz: has no labels');
    assert.deepEqual(codeActionsFor(badData.checkpoint, undefined, true).map((a) => a.command?.command), ['backdoorLens.chooseData']);
    const limited = diagnosticsFor(state(undefined, { status: 'failed', failure: new JobFailure('limit', 'scan stopped: time limit 5 s reached during pairs') }), undefined, options);
    assert.equal(limited.checkpoint[0].code, 'BL040');
    assert.equal(limited.checkpoint[0].severity, DiagnosticSeverity.Information);
    assert.deepEqual(codeActionsFor(limited.checkpoint, undefined, true).map((a) => a.command?.arguments), [['backdoorLens.timeLimitSeconds']]);
    // A load limit lives in backdoor-lens.json: the action opens it.
    const big = diagnosticsFor(state(undefined, { status: 'failed', failure: new JobFailure('limit', modelSizeLimitError(badnets, 222916, 100000).message, badnets) }), undefined, options);
    assert.equal(text(big.checkpoint[0]), 'Scan stopped: model.onnx is 217.7 KiB, over the model size limit of 97.7 KiB; raise limits.maxModelBytes');
    assert.deepEqual(
      codeActionsFor(big.checkpoint, undefined, true).map((a) => [a.title, a.command?.command]),
      [['Raise limits.maxModelBytes in backdoor-lens.json…', 'backdoorLens.openConfig']],
    );
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

describe('fix offers, actions and lenses', () => {
  const fixes: AvailableFix[] = [
    { id: 'bnp', title: 'BNP', basis: 'neurons' },
    { id: 'clp', title: 'CLP', basis: 'neurons' },
    { id: 'anp', title: 'ANP', basis: 'neurons' },
    { id: 'bna', title: 'BNA', basis: 'trigger' },
    { id: 'ep', title: 'EP', basis: 'neurons', notApplicable: "needs a possibly poisoned data set (dataKind 'mixed')" },
  ];
  const methods = (ms: Record<string, number>) => Object.entries(ms).map(([method, ms]) => ({ method, status: 'ran' as const, ms }));
  const backdoored = report({
    verdict: 'backdoored',
    targets: [0],
    neurons: [...scores('bnp', 'bn3', 64, [1, 2]), ...scores('bnp', 'bn2', 32, [3]), ...scores('clp', 'bn3', 64, [])],
    methods: methods({ clp: 90, bnp: 1400, pairs: 25_000, fp: 4000 }),
    timings: { total: 30_500 },
    data: { path: 'clean.npz', n: 1000, labelled: true, kind: 'clean' },
  });
  const diag = (code: string, severity: DiagnosticSeverity, method?: string) => ({ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, code, severity, message: '', data: { checkpoint: 'file:///m.onnx', kind: 'finding', method } });
  const stateOf = (r: ScanReport) => ({ path: '/m.onnx', uri: 'file:///m.onnx', status: 'done', outcome: { report: r, fixes } }) as unknown as CheckpointState;

  test('titles say what the fix acts on and its estimated cost; fixes that cannot help are not offered', () => {
    const offers = fixOffers(fixes, backdoored);
    assert.deepEqual(offers.map((o) => [o.id, o.helps]), [['bna', true], ['bnp', true], ['clp', false], ['anp', false], ['ep', false]]);
    // BNA: 2.5× the class-pair detector's 25 s per target; pruning: about Fine-Pruning's 4 s of accuracy evaluations.
    assert.equal(offers[0].title, 'BNA correction for target 0 — est. ~60 s');
    assert.equal(offers[1].title, 'Prune with BNP (3 flagged channels in bn3, bn2) — est. ~5 s');
    assert.equal(offers[2].why, 'CLP flagged no channels in the last scan');
    assert.equal(offers[3].why, 'ANP did not run in the last scan (slow: minutes, hours on a ResNet-18)');
    assert.match(offers[3].title, /slow: minutes or more$/);
    assert.equal(offers[4].disabled, "needs a possibly poisoned data set (dataKind 'mixed')");
  });

  test("'auto' comes first when it can help and costs the sum of the fixes it tries", () => {
    const offers = fixOffers([...fixes, { id: 'auto', title: 'Repair', basis: 'trigger' }], backdoored);
    assert.deepEqual(offers.slice(0, 3).map((o) => o.id), ['auto', 'bna', 'bnp']);
    // BNA 62.5 s + BNP 5 s.
    assert.equal(offers[0].title, 'Repair (each fix, keep the best) for target 0 — est. ~70 s');
  });

  test('a fix tried on this content titles its offer with the measured effect', () => {
    const summary: FixSummary = { source: '', method: 'bna', requested: 'bna', outcome: 'reduced', headline: '', attacks: [], outputs: [], pruned: [], notes: [], before: { accuracy: 0.913, asr: 0.97 }, after: { accuracy: 0.918, asr: 0.047 } };
    assert.equal(fixOffers(fixes, backdoored, new Map([['bna', summary]]))[0].title, 'BNA correction for target 0 — last run reduced: ASR 97.0% → 4.7%, accuracy 91.8%, est. ~60 s');
  });

  test('without a detected backdoor no trigger fix is offered; a clean scan offers only the pruning of what was flagged', () => {
    const clean = { ...backdoored, verdict: 'clean' as const, targets: [] };
    const offers = fixOffers(fixes, clean);
    assert.deepEqual(offers.filter((o) => o.helps).map((o) => o.id), ['bnp']);
    assert.equal(offers.find((o) => o.id === 'bna')?.why, 'no backdoor was detected, so there is no trigger to act on');
  });

  test('code actions: the backdoor finding gets the helpful fixes, trigger fix first and preferred; a neuron finding its own method', () => {
    const actions = codeActionsFor([diag('BL001', DiagnosticSeverity.Error, 'pairs'), diag('BL011', DiagnosticSeverity.Warning, 'bnp')], stateOf(backdoored), true);
    assert.deepEqual(actions.map((a) => (a.command?.arguments?.[0] as { method: string }).method), ['bna', 'bnp']);
    assert.equal(actions[0].isPreferred, true);
    assert.equal(actions[0].command?.command, 'backdoorLens.applyFix');
    assert.equal(actions[0].title, 'BNA correction for target 0 — est. ~60 s');
    assert.deepEqual(codeActionsFor([diag('BL010', DiagnosticSeverity.Information, 'clp')], stateOf(backdoored), true), [], 'CLP flagged nothing');
    assert.deepEqual(codeActionsFor([diag('BL001', DiagnosticSeverity.Error)], stateOf(backdoored), false)[0].command?.command, 'backdoorLens.server.applyFix');
    assert.deepEqual(fixesFor(diag('BL021', DiagnosticSeverity.Information, 'ep'), fixOffers(fixes, backdoored)), []);
  });

  test('lenses: the trigger fix on the verdict line, per flagged layer and method with Prune when it can help', () => {
    const lenses = codeLensesFor(stateOf(backdoored), { summaryLine: 1, layerLines: new Map([['bn3', 12], ['bn2', 8]]) }, true);
    assert.deepEqual(lenses.map((l) => [l.range.start.line, l.command?.title, l.command?.command]), [
      [1, 'BNA correction for target 0 — est. ~60 s', 'backdoorLens.applyFix'],
      [1, 'Open report', 'backdoorLens.openReport'],
      [12, 'BNP: 2 neurons flagged — Prune bn3 channels 1, 2', 'backdoorLens.applyFix'],
      [8, 'BNP: 1 neuron flagged — Prune bn2 channel 3', 'backdoorLens.applyFix'],
    ]);
  });

  test('cost estimates are rounded so they do not read as measurements', () => {
    assert.deepEqual([400, 4_400, 44_000, 89_000, 200_000].map(durationText), ['~1 s', '~4 s', '~40 s', '~90 s', '~3 min']);
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

  test('editor settings carry method options; backdoor-lens.json wins key by key', () => {
    const dir = tempDir();
    const model = join(dir, 'm.onnx');
    writeFileSync(model, '');
    const editor = { methodOptions: { pairs: { imagesPerClass: 20, maxSteps: 30 }, mmbd: { starts: 3 } } };
    assert.deepEqual(resolveSettings(model, editor, dir).methodOptions, editor.methodOptions);
    writeFileSync(join(dir, 'backdoor-lens.json'), JSON.stringify({ methodOptions: { pairs: { imagesPerClass: 50 } } }));
    assert.deepEqual(resolveSettings(model, editor, dir).methodOptions, { pairs: { imagesPerClass: 50, maxSteps: 30 }, mmbd: { starts: 3 } });
    assert.equal(resolveSettings(model, {}, dir).methodOptions?.pairs.imagesPerClass, 50);
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
