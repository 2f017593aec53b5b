/**
 * What the editor shows beside the diagnostics: one-line verdicts with their evidence, the scan log,
 * the time-left estimate, the change notification, and the trigger viewer's images.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AnalysisOutput } from '../../engine/analyses/types';
import type { ReversedTrigger } from '../../engine/analyses/reversal/trigger';
import type { Dataset } from '../../engine/data/types';
import type { ScanReport, VerdictEvidence } from '../../engine/report/types';
import type { PixelImage } from '../../protocol/report-view';
import { modelSizeLimitError } from '../../engine/formats/limits';
import { clip, evidenceText, failureLine, limitSetting, verdictLine } from '../../protocol/verdict-text';
import type { CheckpointState } from '../../server/src/checkpoints';
import { Eta, etaText, formatReport } from '../../engine';
import { changeOf } from '../../server/src/features/report-view';
import { JobLog } from '../../server/src/features/scan-log';
import { JobFailure } from '../../server/src/jobs/worker-host';
import { triggerViews } from '../../engine/report/trigger-views';
import { scanReport } from './report-fixture';

const evidence = (over: Partial<VerdictEvidence>): VerdictEvidence => ({ method: 'pairs:patch', statistic: 'anomaly index', value: 9.52, threshold: 7, direction: 'above', thresholdSource: "BNA's default (7)", flagged: true, targets: [0], attackType: 'all-to-one', summary: '', ...over });

/** A labelled 4-image data set and a pairs run on a 1×4×4 model, unless the test says otherwise. */
const report = (over: Partial<ScanReport>) =>
  scanReport({ model: { path: '/m.onnx', sha256: 'a'.repeat(64), format: 'onnx', input: { name: 'input', dims: ['N', 1, 4, 4] }, numClasses: 2, bn: 'kept' }, data: { path: '/d.npz', n: 4, labelled: true, kind: 'clean' }, methods: [{ method: 'pairs', status: 'ran', ms: 10 }], timings: { total: 10 }, ...over });

describe('one-line verdicts', () => {
  test('the verdict names the test, its value and the threshold that decided it', () => {
    assert.equal(verdictLine(report({ verdict: 'backdoored', targets: [0], attackType: 'all-to-one', evidence: [evidence({})] })), 'Backdoor: target class 0 (all-to-one) — pairs:patch 9.52 > 7');
    // Clean: the test closest to its threshold.
    const clean = report({ evidence: [evidence({ value: 3.1, flagged: false, targets: [] }), evidence({ method: 'mmbd', value: 0.2, threshold: 0.05, direction: 'below', flagged: false, targets: [] })] });
    assert.equal(verdictLine(clean), 'No backdoor found — pairs:patch 3.1 ≤ 7');
    assert.equal(evidenceText(evidence({ method: 'mmbd', value: 0.01, threshold: 0.05, direction: 'below' })), 'mmbd 0.01 < 0.05');
    // Without data the verdict says what a data-free "clean" is worth.
    const dataFree = report({ data: null, methods: [{ method: 'mmbd', status: 'ran', ms: 1 }], evidence: [evidence({ method: 'mmbd', value: 1.7e-6, threshold: 1e-11, direction: 'below', flagged: false, targets: [] })] });
    assert.equal(verdictLine(dataFree), 'No backdoor found without data (data-free checks miss most backdoors) — mmbd 1.70e-6 ≥ 1.00e-11');
    assert.match(formatReport(dataFree), /^VERDICT: clean — no backdoor found without data; data-free checks miss most backdoors: scan with --data$/m);
    assert.match(formatReport(clean), /^VERDICT: clean — no backdoor found$/m);
    assert.equal(verdictLine(report({ verdict: 'inconclusive', data: null, methods: [{ method: 'clp', status: 'ran', ms: 1 }] })), 'Inconclusive: no clean data set, so no detector ran');
    const refused = report({ verdict: 'inconclusive', data: null, methods: [], findings: [{ severity: 'error', code: 'BL030', method: 'pickle', message: 'the pickle calls os.system' }] });
    assert.equal(verdictLine(refused), 'Not loaded: the pickle calls os.system');
  });

  test('clip keeps the first line, at most 120 characters, cut at a word', () => {
    const long = `${'word '.repeat(40)}\nsecond line`;
    const c = clip(long);
    assert.ok(c.length <= 120 && c.endsWith('…') && !c.includes('\n'), c);
    assert.equal(clip('short\nmore'), 'short');
    // No parenthesis left open by the cut.
    assert.equal(clip(`${'x'.repeat(100)} pairs (37 settled, of them 12 early)`), `${'x'.repeat(100)} pairs…`);
  });

  test('a scan that could not run: the file named, no command-line flags, and the action kept when the line is cut', () => {
    const size = failureLine({ code: 'limit', message: modelSizeLimitError('/w/big.onnx', 222916, 100000).message, file: '/w/big.onnx' }, '/w/big.onnx');
    assert.equal(size, 'Scan stopped: big.onnx is 217.7 KiB, over the model size limit of 97.7 KiB; raise limits.maxModelBytes');
    assert.equal(limitSetting(size), 'limits.maxModelBytes');
    const stage = 'reversing patch triggers for 90 class pairs (0 settled) in the trigger reversal of every class pair, a long stage name';
    const time = failureLine({ code: 'limit', message: `scan stopped: time limit 3 s reached during ${stage}; raise timeLimitSeconds (--time-limit on the command line) to let it finish` }, '/w/m.onnx');
    assert.ok(time.length <= 120, time);
    assert.match(time, /^Scan stopped: time limit 3 s reached during reversing patch triggers .*…; raise timeLimitSeconds$/);
    assert.equal(limitSetting(time), 'backdoorLens.timeLimitSeconds');
    // About the data, not the model: the data file is named.
    assert.equal(failureLine({ code: 'bad-data', message: 'labels are missing', file: '/w/d.npz' }, '/w/m.onnx'), 'Could not be scanned: /w/d.npz: labels are missing');
    assert.equal(failureLine({ code: 'bad-file', message: 'm.onnx: not an ONNX model' }, '/w/m.onnx'), 'Could not be scanned: m.onnx: not an ONNX model');
  });
});

describe('scan log', () => {
  test('a line when the job starts (settings), per stage with the time it started at, and the outcome', () => {
    const lines: string[] = [];
    const log = new JobLog((l) => lines.push(l), 'scan', '/w/model.onnx');
    log.begin({ data: '/w/clean.npz', threshold: 3 });
    log.running();
    log.stage('load-model', 'Loading the model');
    log.stage('load-model', 'Loading the model');
    log.stage('pairs', 'Class-pair trigger reversal');
    log.stage('pairs', 'Class-pair trigger reversal: reversing patch triggers for 90 class pairs (3 settled)');
    log.done(report({ verdict: 'backdoored', targets: [0], evidence: [evidence({})], methods: [{ method: 'pairs', status: 'ran', ms: 25_100 }, { method: 'ep', status: 'skipped', reason: 'needs mixed data', ms: 0 }] }));
    assert.equal(lines.length, 4, lines.join('\n'));
    assert.equal(lines[0], 'scan model.onnx: started — data /w/clean.npz, methods default, threshold 3, provider cpu, no time limit');
    assert.match(lines[1], /^scan model\.onnx: \+0\.0 s \[load-model\] Loading the model$/);
    assert.match(lines[2], /^scan model\.onnx: \+0\.0 s \[pairs\] Class-pair trigger reversal \(previous stage 0\.0 s\)$/);
    assert.match(lines[3], /^scan model\.onnx: done in 0\.0 s — Backdoor: target class 0 — pairs:patch 9\.52 > 7; pairs 25\.1 s; ep skipped \(needs mixed data\)$/);
  });

  test('a failure and a cancellation say so', () => {
    const lines: string[] = [];
    new JobLog((l) => lines.push(l), 'fix bna', '/w/model.onnx').failed('bad-data', 'clean.npz has no labels');
    new JobLog((l) => lines.push(l), 'scan', '/w/model.onnx').failed('cancelled', 'cancelled');
    assert.deepEqual(lines, ['fix bna model.onnx: failed (bad-data) after 0.0 s — clean.npz has no labels', 'scan model.onnx: cancelled after 0.0 s']);
  });
});

describe('time left', () => {
  test('nothing until there is something to go on, then the rest at the rate so far', () => {
    const eta = new Eta();
    const t0 = Date.now();
    assert.equal(eta.update(0.01, t0 + 5000), undefined);
    assert.equal(eta.update(0.5, t0 + 1000), undefined);
    const left = eta.update(0.25, t0 + 10_000)!;
    assert.ok(Math.abs(left - 30) < 0.5, String(left));
    assert.deepEqual([3, 42, 300].map(etaText), ['a few seconds left', 'about 40 s left', 'about 5 min left']);
  });
});

describe('change notification', () => {
  const base = { path: '/w/m.onnx', uri: 'file:///w/m.onnx' };
  test('status, verdict and the one-line summary for the status bar and decorations', () => {
    const done = { ...base, status: 'done', outcome: { report: report({ verdict: 'backdoored', targets: [0], evidence: [evidence({})] }) } } as unknown as CheckpointState;
    assert.deepEqual(changeOf(done), { uri: base.uri, status: 'done', verdict: 'backdoored', noData: false, summary: 'Backdoor: target class 0 — pairs:patch 9.52 > 7' });
    const failed = { ...base, status: 'failed', failure: new JobFailure('bad-file', 'is truncated') } as CheckpointState;
    assert.deepEqual(changeOf(failed), { uri: base.uri, status: 'failed', summary: 'Could not be scanned: m.onnx is truncated' });
    const scanning = { ...base, status: 'scanning', stage: 'Class-pair trigger reversal', fraction: 0.42 } as CheckpointState;
    assert.equal(changeOf(scanning).summary, '42% Class-pair trigger reversal');
  });
});

describe('trigger viewer images', () => {
  // Two classes of 4×4 one-channel images, normalised with mean 0.5 and std 0.5 (pixel = 0.5 + 0.5·x).
  const preprocess = { layout: 'NCHW' as const, channels: 1, height: 4, width: 4, scale: 1, mean: [0.5], std: [0.5], resized: false, sourceLayout: 'NCHW' as const };
  const x = new Float32Array(4 * 16).fill(-1); // black images
  const data: Dataset = { source: 'd.npz', n: 4, x, dims: [4, 1, 4, 4], labels: Int32Array.from([0, 0, 1, 1]), preprocess };
  const range = { min: [-1], max: [1] };
  const bytes = (img: PixelImage | undefined) => [...Buffer.from(img!.data, 'base64')];
  const mask = new Float32Array(16);
  mask[15] = 1;
  const patch: ReversedTrigger = { kind: 'patch', target: 0, sources: [1], mask, pattern: new Float32Array(16).fill(1), range };

  test('a patch: the mask, the pattern and the stamped image in pixel space, one row per flagged pair with how it was flagged', () => {
    const outputs = new Map<string, AnalysisOutput>([['pairs', { state: { triggers: [patch] } }]]);
    const r = report({ pairs: [{ source: 1, target: 0, statistic: 1, anomalyIndex: 2, flagged: true, method: 'pairs:patch', via: 'transfer', transferShare: 0.6 }] });
    const { views, total } = triggerViews(outputs, r, data);
    assert.equal(total, 1);
    const v = views[0];
    assert.deepEqual([v.kind, v.method, v.pair, v.via, v.size], ['patch', 'pairs:patch', { source: 1, target: 0 }, 'transfer', '|m|₁ = 1.0']);
    assert.deepEqual(bytes(v.mask), [...Array(15).fill(0), 255]);
    assert.deepEqual(bytes(v.pattern), Array(16).fill(255));
    assert.deepEqual(bytes(v.clean), Array(16).fill(0));
    assert.deepEqual(bytes(v.stamped), [...Array(15).fill(0), 255], 'only the masked pixel changes');
  });

  test('a perturbation: a signed image (128 = no change) with its scale', () => {
    const v = new Float32Array(16);
    v[0] = 0.4; // +0.2 in pixel units
    v[1] = -0.2; // −0.1
    const t: ReversedTrigger = { kind: 'perturbation', target: 1, sources: [0], perturbation: v, range };
    const { views } = triggerViews(new Map([['pairs', { state: { triggers: [t] } }]]), report({}), data);
    const p = views[0].perturbation!;
    assert.ok(Math.abs(p.scale! - 0.2) < 1e-6, String(p.scale));
    assert.deepEqual(bytes(p).slice(0, 3), [255, 65, 128]);
    assert.equal(views[0].mask, undefined);
  });

  test('a kind the viewer does not know keeps its row: the clean image, and a flow field when it has one', () => {
    const flow = new Float32Array(32);
    flow[0] = 2; // dx of pixel 0
    const warp = { kind: 'warp', target: 0, sources: [1], flow, range } as unknown as ReversedTrigger;
    const other = { kind: 'feature', target: 0, sources: [1], range } as unknown as ReversedTrigger;
    const { views } = triggerViews(new Map([['featurere', { state: { triggers: [warp, other] } }]]), report({}), data);
    assert.deepEqual(views.map((v) => [v.kind, v.method, !!v.clean]), [['warp', 'featurere', true], ['feature', 'featurere', true]]);
    assert.equal(views[0].flow!.channels, 2);
    assert.equal(views[0].flow!.scale, 2);
    assert.equal(views[1].stamped, undefined, 'no stamping for a kind the engine cannot stamp');
  });

  test('at most the limit, outliers first; no rows without data', () => {
    const many: ReversedTrigger[] = Array.from({ length: 5 }, () => ({ ...patch }));
    const r = report({ pairs: [{ source: 1, target: 0, statistic: 1, anomalyIndex: 9, flagged: true, method: 'pairs:patch', via: 'outlier' }] });
    const { views, total } = triggerViews(new Map([['pairs', { state: { triggers: many } }]]), r, data, 3);
    assert.deepEqual([views.length, total], [3, 5]);
    assert.deepEqual(triggerViews(new Map([['pairs', { state: { triggers: many } }]]), r, undefined), { views: [], total: 0 });
  });
});
