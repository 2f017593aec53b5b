/**
 * Run-time bombs (fixtures/hostile): sizes known before a session runs are refused there; what only
 * shows at run time (a Loop with no trip count, a ConstantOfShape sized by the input's values) is
 * ended by the time and memory limits, which every command has and which hold inside onnxruntime.
 * A scan stopped at its time limit prints what it finished. An inconclusive scan has its own exit code.
 * The bin tests run the built CLI (dist/), as a user does: the job in a child watched by the CLI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { exitCodes, inconclusiveExitCode } from '../../cli/main';
import { settingsFor } from '../../cli/options';
import { GraphBuilder } from '../../engine/graph/builder';
import { defaultTimeLimitSeconds } from '../../engine/runtime/limits';
import { floatTensor } from '../../engine/tensor';
import type { ScanReport } from '../../engine';
import { cli, fixtures, fmnist, npyBytes, root, tempDir } from '../helpers';
import { cliBin } from './traced';

const hostile = join(fixtures, 'hostile');
const tiny = join(hostile, 'tiny.npz');

/** The built CLI as a user runs it; wall time from the spawn to the exit. */
function bin(args: string[], timeoutMs = 120_000) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [cliBin, ...args], { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, NODE_OPTIONS: '' } });
  return { exitCode: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, wallMs: Date.now() - t0 };
}

/**
 * What starting the CLI costs on this machine now (two node processes, the bundle loaded): the
 * limits count from the CLI's start, so a stop is within 10% of the limit plus this.
 */
let startupMs: number | undefined;
function startup(): number {
  startupMs ??= bin(['--version']).wallMs * 2;
  return startupMs;
}

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, stderr);
  assert.doesNotMatch(lines[0], /internal error|\[E:onnxruntime|\n\s+at /);
  return lines[0];
}

describe('sizes known before a session runs are bounded there', () => {
  test('ConstantOfShape of 2^30 floats: refused naming the node, exit 2, for eval and scan', async () => {
    for (const args of [['eval', join(hostile, 'constant-of-shape-bomb.onnx'), '--data', tiny], ['scan', join(hostile, 'constant-of-shape-bomb.onnx')]]) {
      const r = await cli(...args);
      assert.equal(r.exitCode, exitCodes.limit, r.stderr);
      assert.match(oneLine(r.stderr), /ConstantOfShape node 'ConstantOfShape_2' would make a tensor of shape \[1073741824\]: 1\.07e\+9 elements, over the tensor size limit of 268435456; raise limits\.maxTensorElements/);
    }
  });

  test('a Loop of 10^15 trips: refused before running, exit 2', async () => {
    const r = await cli('eval', join(hostile, 'loop-bomb.onnx'), '--data', tiny);
    assert.equal(r.exitCode, exitCodes.limit);
    assert.match(oneLine(r.stderr), /Loop node 'Loop_2' would run 1000000000000000 trips of its 2-node body/);
  });

  test('the bound follows --max-tensor-elements: a smaller limit refuses a real model\'s largest activation', async () => {
    const r = await cli('info', join(fmnist.badnets, 'model.onnx'), '--max-tensor-elements', '1000');
    assert.equal(r.exitCode, exitCodes.limit);
    assert.match(oneLine(r.stderr), /over the tensor size limit of 1000/);
  });
});

describe('every command has time and memory limits, and they hold inside onnxruntime', () => {
  test(`the default time limit is ${defaultTimeLimitSeconds} s for every command; --time-limit 0 lifts it; --max-memory is common`, () => {
    const model = join(fmnist.badnets, 'model.onnx');
    assert.equal(settingsFor(model, {}).job.timeLimitMs, defaultTimeLimitSeconds * 1000);
    assert.equal(settingsFor(model, { 'time-limit': '0' }).job.timeLimitMs, undefined);
    assert.deepEqual(settingsFor(model, { 'time-limit': '2.5', 'max-memory': '700' }).job, { timeLimitMs: 2500, maxMemoryMB: 700 });
  });

  test('--help of eval, fix and info shows both limits', async () => {
    for (const command of ['eval', 'fix', 'info', 'scan']) {
      const r = await cli(command, '--help');
      assert.match(r.stdout, /--time-limit S +stop after S seconds \(default 1800; 0: no limit; timeLimitSeconds\)/, command);
      assert.match(r.stdout, /--max-memory MB/, command);
    }
  });

  test('a Loop that never ends: eval ends within 10% of --time-limit 15, naming the stage, exit 2', () => {
    const r = bin(['eval', join(hostile, 'loop-forever.onnx'), '--data', tiny, '--time-limit', '15']);
    assert.equal(r.exitCode, exitCodes.limit, r.stderr);
    assert.match(oneLine(r.stderr), /^backdoor-lens: eval stopped: time limit 15 s reached during evaluating .*tiny\.npz \(the job did not stop at its own checks, e\.g\. inside onnxruntime, so it was ended\)/);
    assert.ok(r.wallMs <= 16_500 + startup(), `${r.wallMs} ms (start-up ${startup()} ms)`);
  });

  test('ConstantOfShape sized by the input at run time: --max-memory 600 ends it there, exit 2', () => {
    const r = bin(['eval', join(hostile, 'constant-of-shape-dynamic.onnx'), '--data', tiny, '--max-memory', '600', '--time-limit', '300']);
    assert.equal(r.exitCode, exitCodes.limit, r.stderr);
    const [, used] = /eval stopped: memory limit 600 MB reached during evaluating .*tiny\.npz \(the process used (\d+) MB\)/.exec(oneLine(r.stderr)) ?? assert.fail(r.stderr);
    // Sampled every 50 ms: the job is ended soon after it passes the limit.
    assert.ok(Number(used) > 600 && Number(used) < 900, used);
  });
});

describe('a scan stops within its time limit with what it finished', () => {
  test('--time-limit 30 on the small BadNets model: exit 2 within 10%, clp done, pairs stopped at its stage, BL040', () => {
    // Eight times the images per step and ten times the steps: minutes of reversal even on an idle
    // machine, where the default reversal of this model ends well inside 30 s.
    const r = bin(['scan', join(fmnist.badnets, 'model.onnx'), '--data', join(fmnist.data, 'clean.npz'), '--methods', 'clp,pairs', '--option', 'pairs.batchSize=64', '--option', 'pairs.maxSteps=600', '--time-limit', '30', '--json']);
    assert.equal(r.exitCode, exitCodes.limit, r.stderr);
    assert.match(oneLine(r.stderr), /^backdoor-lens: scan stopped: time limit 30 s reached during trigger reversal step \d+\/\d+ \(10 targets, 9 class shifts, 5 screens\); raise timeLimitSeconds/);
    assert.ok(r.wallMs <= 33_000 + startup(), `${r.wallMs} ms (start-up ${startup()} ms)`);
    const report = JSON.parse(r.stdout) as ScanReport;
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    addFormats(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync(join(root, 'schemas/report.schema.json'), 'utf8')));
    assert.ok(validate(JSON.parse(r.stdout)), JSON.stringify(validate.errors));
    assert.deepEqual(report.methods.map((m) => [m.method, m.status]), [['clp', 'ran'], ['pairs', 'stopped']]);
    assert.ok(report.neurons.length > 0, 'the finished method\'s results are kept');
    const bl040 = report.findings.find((f) => f.code === 'BL040')!;
    assert.match(bl040.message, /time limit 30 s reached during trigger reversal step/);
    assert.equal(report.verdict, 'inconclusive');
  });

  /** Conv → ReLU → global average pool → 1 000 logits, random weights; 3×32×32 input; 5 images a class. */
  function k1000(): string {
    const random = (n: number, scale: number) => Float32Array.from({ length: n }, (_, i) => scale * Math.sin(12.9898 * (i + 1)));
    const b = new GraphBuilder('k1000');
    const conv = b.op('Conv', [b.input('input', 'float32', ['N', 3, 32, 32]), b.initializer('conv.weight', floatTensor([16, 3, 3, 3], random(432, 0.3))), b.initializer('conv.bias', floatTensor([16], random(16, 0.1)))], { pads: [1, 1, 1, 1] });
    const pooled = b.op('Flatten', [b.op('GlobalAveragePool', [b.op('Relu', [conv])])]);
    const logits = b.op('Gemm', [pooled, b.initializer('fc.weight', floatTensor([1000, 16], random(16_000, 0.5))), b.initializer('fc.bias', floatTensor([1000], random(1000, 0.1)))], { transB: 1 });
    b.output(logits, 'float32', ['N', 1000]);
    const dir = tempDir('bl-k1000-');
    writeFileSync(join(dir, 'k1000.onnx'), b.build().toBytes());
    const n = 5000;
    writeFileSync(join(dir, 'x.npy'), npyBytes('<f4', [n, 3, 32, 32], Buffer.from(Float32Array.from({ length: n * 3072 }, (_, i) => (Math.sin(78.233 * i) + 1) / 2).buffer)));
    writeFileSync(join(dir, 'y.npy'), npyBytes('<i8', [n], Buffer.from(BigInt64Array.from({ length: n }, (_, i) => BigInt(Math.floor(i / 5))).buffer)));
    return dir;
  }

  test('a 1 000-class model, every class reversed (pairs.manyClasses=1000): --time-limit 60 exits within 66 s, pairs stopped at its stage', () => {
    const dir = k1000();
    // The many-class plan is switched off so that the screens run over all 1 000 targets, which take far longer than the limit.
    const r = bin(['scan', join(dir, 'k1000.onnx'), '--data', join(dir, 'x.npy'), '--labels', join(dir, 'y.npy'), '--option', 'pairs.manyClasses=1000', '--time-limit', '60', '--json'], 180_000);
    assert.equal(r.exitCode, exitCodes.limit, r.stderr);
    assert.match(oneLine(r.stderr), /^backdoor-lens: scan stopped: time limit 60 s reached during .*\(1000 targets, 999 class shifts, \d+ screens\)/);
    assert.ok(r.wallMs <= 66_000 + startup(), `${r.wallMs} ms (start-up ${startup()} ms)`);
    const report = JSON.parse(r.stdout) as ScanReport;
    assert.equal(report.model.numClasses, 1000);
    assert.equal(report.methods.find((m) => m.method === 'pairs')?.status, 'stopped');
  });

  test('the same 1 000-class model, default scan: the many-class plan gives a verdict under --time-limit 60', () => {
    const dir = k1000();
    const r = bin(['scan', join(dir, 'k1000.onnx'), '--data', join(dir, 'x.npy'), '--labels', join(dir, 'y.npy'), '--time-limit', '60', '--json'], 180_000);
    const report = JSON.parse(r.stdout) as ScanReport;
    const pairs = report.methods.find((m) => m.method === 'pairs')!;
    assert.equal(pairs.status, 'ran', r.stderr);
    assert.match(pairs.notes![0], /^many classes \(K = 1000 > 64\): .*kept 8 targets/);
    assert.ok(report.verdict === 'clean' || report.verdict === 'backdoored', report.verdict);
  });

  test('a big graph stops while it is prepared: 300 000 nodes under --time-limit 2 stop during loading', async () => {
    const b = new GraphBuilder('big');
    const x = b.op('Flatten', [b.input('input', 'float32', ['N', 1, 4, 4])]);
    let y = b.op('Gemm', [x, b.initializer('fc.weight', floatTensor([3, 16], new Float32Array(48).fill(0.1)))], { transB: 1 });
    for (let i = 0; i < 300_000; i++) y = b.op('Relu', [y]);
    b.output(y, 'float32', ['N', 3]);
    const path = join(tempDir('bl-big-'), 'big.onnx');
    writeFileSync(path, b.build().toBytes());
    const t0 = Date.now();
    const r = await cli('scan', path, '--time-limit', '2');
    assert.equal(r.exitCode, exitCodes.limit, r.stderr);
    assert.match(oneLine(r.stderr), /scan stopped: time limit 2 s reached during loading the model/);
    // The decode itself cannot be interrupted in-process (the CLI's watchdog ends that); the stages after it check the clock.
    assert.ok(Date.now() - t0 < 30_000);
  });
});

describe('inconclusive is never "nothing found"', () => {
  test(`a classifier with a Loop: exit ${inconclusiveExitCode}, naming the op the detectors cannot handle`, async () => {
    const r = await cli('scan', join(hostile, 'loop-classifier.onnx'), '--data', tiny);
    assert.equal(r.exitCode, inconclusiveExitCode, r.stdout + r.stderr);
    assert.match(r.stdout, /VERDICT: inconclusive — no detector reached a verdict: the model has ops the detectors cannot handle \(Loop; pairs failed\)/);
    assert.match(r.stdout, /BL022 \[pairs\] .*cannot differentiate op Loop \(node 'Loop_2'\)/);
  });

  test('the exit codes are in the main --help and the README', async () => {
    const help = (await cli('--help')).stdout;
    assert.match(help, /5 inconclusive \(no detector reached a verdict/);
    assert.match(readFileSync(join(root, 'README.md'), 'utf8'), /`5` inconclusive/);
  });
});
