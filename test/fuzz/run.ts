/**
 * npm run fuzz -- --iterations N --seed S [--format onnx,npz] [--save]
 * Mutates the seed files of every input format and feeds them to the loaders. Each input must
 * end in a parsed result or a clear error: no crash, no hang (5 s), no allocation beyond
 * 16 × its size + 64 MiB. Failing inputs are minimised; --save commits them as regression cases
 * under test/fuzz/regressions/. The campaign feeds the engine's readers directly (the pickle
 * machine, the npz and IDX parsers, the image decoders), so it lives in test/, which alone may
 * import past engine/index.ts; fuzz.test.ts runs a short one on the same targets.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { BackdoorLensError } from '../../engine/errors';
import { targets } from './targets';
import { inputFor, type WorkerMessage } from './worker';

const HANG_MS = 5000;
const allowedBytes = (size: number) => 16 * size + 64 * 2 ** 20;

interface Failure {
  format: string;
  index: number;
  kind: 'crash' | 'hang' | 'memory' | 'worker-died';
  detail: string;
}

interface Stats {
  format: string;
  inputs: number;
  parsed: number;
  errors: number;
  failures: Failure[];
  maxExtraMiB: number;
  maxInputMs: number;
  ms: number;
}

function runRange(format: string, seed: number, from: number, to: number, stats: Stats): Promise<number> {
  return new Promise((resolve) => {
    // Workers cannot load .ts by path; register tsx inside the worker first.
    const worker = new Worker(`require('tsx/cjs'); require(${JSON.stringify(join(__dirname, 'worker.ts'))});`, {
      eval: true,
      workerData: { format, seed, from, to },
      resourceLimits: { maxOldGenerationSizeMb: 1024 },
    });
    let current = from;
    let startedAt = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stats.failures.push({ format, index: current, kind: 'hang', detail: `no result after ${HANG_MS} ms` });
        void worker.terminate();
      }, HANG_MS);
    };
    let finished = false;
    worker.on('message', (m: WorkerMessage) => {
      if (m.kind === 'start') {
        current = m.index;
        startedAt = performance.now();
        arm();
      } else if (m.kind === 'done') {
        clearTimeout(timer);
        stats.maxInputMs = Math.max(stats.maxInputMs, performance.now() - startedAt);
        stats.inputs++;
        if (m.outcome === 'parsed') stats.parsed++;
        else if (m.outcome === 'error') stats.errors++;
        else stats.failures.push({ format, index: m.index, kind: 'crash', detail: m.detail ?? '' });
        stats.maxExtraMiB = Math.max(stats.maxExtraMiB, m.extraBytes / 2 ** 20);
        if (m.extraBytes > allowedBytes(m.size)) {
          stats.failures.push({ format, index: m.index, kind: 'memory', detail: `${(m.extraBytes / 2 ** 20).toFixed(1)} MiB for a ${m.size}-byte input` });
        }
        current = m.index + 1;
      } else {
        finished = true;
      }
    });
    worker.on('error', (e) => {
      stats.failures.push({ format, index: current, kind: 'worker-died', detail: e.message });
    });
    worker.on('exit', () => {
      clearTimeout(timer);
      // Resume after the input that killed the worker.
      resolve(finished ? to : current + (stats.failures.some((f) => f.index === current && f.format === format) ? 1 : 0));
    });
  });
}

async function campaign(format: string, seed: number, iterations: number): Promise<Stats> {
  const stats: Stats = { format, inputs: 0, parsed: 0, errors: 0, failures: [], maxExtraMiB: 0, maxInputMs: 0, ms: 0 };
  const t0 = Date.now();
  let next = 0;
  while (next < iterations) next = await runRange(format, seed, next, iterations, stats);
  stats.ms = Date.now() - t0;
  return stats;
}

/** Shrinks a crashing input while the same kind of crash persists (delta debugging by chunks). */
async function minimise(format: string, bytes: Uint8Array): Promise<Uint8Array> {
  const target = targets.find((t) => t.format === format)!;
  const crashes = async (b: Uint8Array) => {
    try {
      await target.load(b);
      return false;
    } catch (e) {
      return !(e instanceof BackdoorLensError);
    }
  };
  let best = bytes;
  for (let chunk = Math.floor(best.length / 2); chunk >= 1; chunk = Math.floor(chunk / 2)) {
    for (let at = 0; at + chunk <= best.length; ) {
      const candidate = new Uint8Array(best.length - chunk);
      candidate.set(best.subarray(0, at));
      candidate.set(best.subarray(at + chunk), at);
      if (await crashes(candidate)) best = candidate;
      else at += chunk;
    }
  }
  return best;
}

async function main() {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { iterations: { type: 'string', default: '2000' }, seed: { type: 'string', default: '1' }, format: { type: 'string' }, save: { type: 'boolean' } },
  });
  const iterations = Number(values.iterations), seed = Number(values.seed);
  const formats = values.format ? values.format.split(',') : targets.map((t) => t.format);
  const unknown = formats.filter((f) => !targets.some((t) => t.format === f));
  if (unknown.length) throw new Error(`unknown format ${unknown.join(', ')}; formats: ${targets.map((t) => t.format).join(', ')}`);
  console.log(`fuzz: ${iterations} inputs per format, seed ${seed}, formats ${formats.join(', ')}`);
  const all: Stats[] = [];
  for (const format of formats) {
    const s = await campaign(format, seed, iterations);
    all.push(s);
    console.log(`${format.padEnd(12)} ${String(s.inputs).padStart(7)} inputs  ${String(s.parsed).padStart(6)} parsed  ${String(s.errors).padStart(6)} clear errors  ${String(s.failures.length).padStart(3)} failures  max extra ${s.maxExtraMiB.toFixed(1)} MiB  slowest ${s.maxInputMs.toFixed(0)} ms  ${(s.ms / 1000).toFixed(1)} s`);
  }
  const failures = all.flatMap((s) => s.failures);
  for (const f of failures.slice(0, 20)) console.log(`FAIL ${f.format} #${f.index} ${f.kind}: ${f.detail.split('\n')[0]}`);
  if (failures.length && values.save) {
    const dir = join(__dirname, 'regressions');
    mkdirSync(dir, { recursive: true });
    for (const f of failures.filter((x) => x.kind === 'crash')) {
      const small = await minimise(f.format, inputFor(f.format, seed, f.index));
      const name = `${f.format}-${createHash('sha256').update(small).digest('hex').slice(0, 12)}.bin`;
      writeFileSync(join(dir, name), small);
      console.log(`saved ${name} (${small.length} bytes, from #${f.index})`);
    }
  }
  const total = all.reduce((n, s) => n + s.inputs, 0);
  console.log(`${total} passed, ${failures.length} failed`);
  process.exitCode = failures.length ? 1 : 0;
}

void main();
