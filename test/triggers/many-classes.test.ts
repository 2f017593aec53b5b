/**
 * The many-class plan of trigger reversal (issue 16): above `pairs.manyClasses` classes a
 * pre-screen ranks every target and shift and only candidates are reversed; at or below it the
 * screens run on every class as before. The models are made here: nearest-prototype classifiers
 * over 3×32×32 inputs (each class a random prototype image, so clean images are classified
 * correctly with a margin), with an optional planted BadNets-style backdoor: a white 3×3 patch in
 * the top-left corner adds a large logit to one target class.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadModel, Runtime, scan, type ScanProgress } from '../../engine';
import { subset, type Dataset } from '../../engine/data/types';
import { GraphBuilder } from '../../engine/graph/builder';
import { floatTensor } from '../../engine/tensor';
import { tempDir } from '../helpers';

const runtime = new Runtime();
after(() => runtime.dispose());

const D = 3 * 32 * 32;
/** Deterministic values in [0, 1). */
const unit = (i: number) => {
  const s = Math.sin(12.9898 * i + 78.233) * 43758.5453;
  return s - Math.floor(s);
};
const prototype = (c: number, j: number) => unit(c * D + j + 1);

/** logit_c = s·(p_c·x − ½‖p_c‖²) (nearest prototype, scaled so the softmax does not saturate), plus the planted patch path. */
async function prototypeModel(K: number, target?: number, dominant?: number) {
  const s = 0.05;
  const b = new GraphBuilder(`prototypes${K}`);
  const flat = b.op('Flatten', [b.input('input', 'float32', ['N', 3, 32, 32])]);
  const w = new Float32Array(K * D), bias = new Float32Array(K);
  for (let c = 0; c < K; c++) {
    let norm = 0;
    for (let j = 0; j < D; j++) (w[c * D + j] = s * prototype(c, j)), (norm += prototype(c, j) ** 2);
    bias[c] = -0.5 * s * norm;
  }
  // A class every image lands on unstamped, as in an untrained network: margins are about 13.
  if (dominant !== undefined) bias[dominant] += 100;
  let logits = b.op('Gemm', [flat, b.initializer('fc.weight', floatTensor([K, D], w)), b.initializer('fc.bias', floatTensor([K], bias))], { transB: 1 });
  if (target !== undefined) {
    // The corner's 27 values sum to 13.5 ± 1.5 on clean images and to 27 under a white patch: the
    // target gains 2 per unit above 13.5 (+27 under the patch, against margins of about 13).
    const corner = new Float32Array(D);
    for (let ch = 0; ch < 3; ch++) for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) corner[ch * 1024 + y * 32 + x] = 1;
    const fired = b.op('Gemm', [flat, b.initializer('trigger.weight', floatTensor([1, D], corner)), b.initializer('trigger.bias', floatTensor([1], Float32Array.of(-13.5)))], { transB: 1 });
    const boost = new Float32Array(K);
    boost[target] = 2;
    logits = b.op('Add', [logits, b.op('Gemm', [fired, b.initializer('trigger.target', floatTensor([1, K], boost))])]);
  }
  b.output(logits, 'float32', ['N', K]);
  const path = join(tempDir('bl-many-'), `prototypes${K}.onnx`);
  writeFileSync(path, b.build().toBytes());
  return loadModel(path);
}

/** `perClass` images of every class: its prototype with a little noise. */
function prototypeData(K: number, perClass: number): Dataset {
  const n = K * perClass;
  const x = new Float32Array(n * D), labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(i / perClass);
    labels[i] = c;
    for (let j = 0; j < D; j++) x[i * D + j] = Math.min(1, Math.max(0, prototype(c, j) + 0.1 * (unit(7 * (i * D + j) + 3) - 0.5)));
  }
  return { source: 'prototypes', n, x, dims: [n, 3, 32, 32], labels, preprocess: { layout: 'NCHW', channels: 3, height: 32, width: 32, scale: 1, mean: [0, 0, 0], std: [1, 1, 1], resized: false, sourceLayout: 'NCHW' } };
}

async function pairsScan(K: number, perClass: number, target: number | undefined, pairs: Record<string, unknown> = {}, dominant?: number) {
  const model = await prototypeModel(K, target, dominant);
  const stages: ScanProgress[] = [];
  const { report } = await scan(model, { runtime, data: prototypeData(K, perClass), methods: ['pairs'], seed: 0, methodOptions: { pairs }, onProgress: (p) => stages.push(p) });
  const method = report.methods.find((m) => m.method === 'pairs')!;
  return { report, method, notes: method.notes ?? [], stages: stages.map((p) => p.stage) };
}

test('1 000 classes, 1 image each, a planted target: the pre-screen keeps 8 of 1 000, the target among them, and the scan finds it', async () => {
  const { report, method, notes, stages } = await pairsScan(1000, 1, 613);
  assert.equal(method.status, 'ran', method.reason);
  assert.match(notes[0], /^many classes \(K = 1000 > 64\): a pre-screen ranked all 1000 targets and 999 shifts; kept 8 targets \(([\d, ]+)\) and 8 shifts/);
  const kept = /kept 8 targets \(([\d, ]+)\)/.exec(notes[0])![1].split(', ').map(Number);
  assert.ok(kept.includes(613), notes[0]);
  assert.ok(notes.some((n) => /1 image per class/.test(n)), notes.join('\n'));
  assert.ok(notes.some((n) => /not calibrated for K = 1000/.test(n)), notes.join('\n'));
  assert.equal(report.verdict, 'backdoored');
  assert.deepEqual(report.targets, [613]);
  // Every class has its pre-screen statistic; the planted target's is the largest.
  const pre = report.labels.filter((l) => l.method === 'pairs:prescreen');
  assert.equal(pre.length, 1000);
  assert.equal(pre.reduce((a, b) => (b.statistic! > a.statistic! ? b : a)).label, 613);
  // 16 targets × 3 kinds + 16 shifts × 2 kinds, not 1 000 × 3 + 999 × 2.
  assert.ok(notes.some((n) => /^5 screens .*, 80 triggers of/.test(n)), notes.join('\n'));
  // Progress: the stage and a count; the time left is the front ends' one estimate over the whole
  // scan (engine/eta.ts), so the stage text carries none of its own.
  assert.ok(stages.some((s) => /pre-screen step \d+\/120 \(2 universal triggers for 1000 classes\)$/i.test(s)), stages.slice(0, 5).join('\n'));
  assert.ok(stages.some((s) => /trigger reversal step \d+\/4800 \(8\+8 of 1000 targets, 8\+8 of 999 class shifts, 5 screens\)$/i.test(s)), stages.slice(-5).join('\n'));
  assert.ok(!stages.some((s) => /left/.test(s)), stages.find((s) => /left/.test(s)));
});

test('1 000 classes, 1 image each, no backdoor: clean, and the evidence says over which targets R was taken', async () => {
  const { report, method } = await pairsScan(1000, 1, undefined);
  assert.equal(method.status, 'ran', method.reason);
  assert.equal(report.verdict, 'clean', report.evidence.map((e) => e.summary).join('\n'));
  const e = report.evidence.find((x) => x.method === 'pairs:targets:patch')!;
  assert.match(e.statistic, /over 16 of the 1000 target classes \(pre-screen candidates; median over 8 random ones\)/);
});

test('16 classes: the screens run on every class as before; --option pairs.manyClasses=8 runs the plan instead', async () => {
  const plain = await pairsScan(16, 5, 5);
  assert.ok(!plain.notes.some((n) => /many classes|pre-screen/.test(n)), plain.notes.join('\n'));
  assert.equal(plain.report.labels.filter((l) => l.method === 'pairs:prescreen').length, 0);
  assert.match(plain.report.evidence.find((x) => x.method === 'pairs:targets:patch')!.statistic, /over the 16 target classes$/);
  assert.ok(plain.stages.some((s) => /trigger reversal step \d+\/4680 \(16 targets, 15 class shifts, 5 screens\)$/i.test(s)), plain.stages.slice(-5).join('\n'));
  assert.deepEqual(plain.report.targets, [5]);

  // Only the switch is tested here: at K = 16 the pre-screen's pull ranks the planted target below
  // two natural classes (it is meant for K in the hundreds, where one class's pull stands out).
  const planned = await pairsScan(16, 5, 5, { manyClasses: 8, keep: 2, references: 4 });
  assert.match(planned.notes[0], /^many classes \(K = 16 > 8\): a pre-screen ranked all 16 targets and 15 shifts; kept 2 targets \(\d+, \d+\) and 2 shifts/);
  assert.equal(planned.report.labels.filter((l) => l.method === 'pairs:prescreen').length, 16);
  assert.match(planned.report.evidence.find((x) => x.method === 'pairs:targets:patch')!.statistic, /over 6 of the 16 target classes/);
});

test('1 000 classes with one class missing from the data: not enough data is stated, never a verdict', async () => {
  const model = await prototypeModel(1000);
  const full = prototypeData(1000, 1);
  const data = subset(full, Array.from({ length: full.n }, (_, i) => i).filter((i) => full.labels![i] !== 7));
  const { report } = await scan(model, { runtime, data, methods: ['pairs'], seed: 0 });
  assert.equal(report.verdict, 'inconclusive');
  const run = report.methods.find((m) => m.method === 'pairs')!;
  assert.equal(run.status, 'skipped');
  assert.match(run.reason!, /^not enough data for trigger reversal: it needs ≥ 1 clean image of every class, and 1 of 1000 classes has fewer \(class 7: 0\)/);
});

test('1 000 classes that all land on one class unstamped: a trigger that changes nothing confirms nothing, so no verdict of backdoor', async () => {
  const { report, method, notes } = await pairsScan(1000, 1, undefined, {}, 421);
  assert.equal(method.status, 'ran', method.reason);
  assert.equal(report.verdict, 'clean', report.evidence.map((e) => e.summary).join('\n'));
  assert.deepEqual(report.targets, []);
  // Class 421 is the pre-screen's and the patch screen's top class: flagged by size, then not counted
  // because every held-out image already lands on it without the trigger.
  assert.ok(notes.some((n) => /^targets:\w+: R [\d.]+ > [\d.]+, but its trigger moves no held-out class/.test(n)), notes.join('\n'));
});
