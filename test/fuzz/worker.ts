/**
 * Runs fuzz inputs for one target inside a worker thread, so the parent can kill it when an
 * input hangs and a heap blow-up takes down only the worker.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BackdoorLensError } from '../../engine/errors';
import { mutate, rng } from './mutate';
import { targets } from './targets';

export interface WorkerInput {
  format: string;
  seed: number;
  from: number;
  to: number;
}

export type WorkerMessage =
  | { kind: 'start'; index: number; size: number }
  | { kind: 'done'; index: number; outcome: 'parsed' | 'error' | 'crash'; detail?: string; extraBytes: number; size: number }
  | { kind: 'finished' };

/** The bytes of input `index` of a campaign: a pure function of (format, seed, index). */
export function inputFor(format: string, seed: number, index: number): Uint8Array {
  const target = targets.find((t) => t.format === format)!;
  const seeds = [...target.seeds(), ...(target.refusedSeeds?.() ?? [])];
  const r = rng((seed * 1_000_003 + index) >>> 0);
  const base = seeds[Math.floor(r() * seeds.length)];
  return mutate(base, target.mutators, r);
}

function memory(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function main({ format, seed, from, to }: WorkerInput): Promise<void> {
  const target = targets.find((t) => t.format === format)!;
  for (let index = from; index < to; index++) {
    const bytes = inputFor(format, seed, index);
    if (index % 64 === 0) (globalThis as { gc?: () => void }).gc?.();
    parentPort!.postMessage({ kind: 'start', index, size: bytes.length } satisfies WorkerMessage);
    const before = memory();
    let outcome: 'parsed' | 'error' | 'crash' = 'parsed';
    let detail: string | undefined;
    let result: unknown;
    try {
      result = await target.load(bytes);
    } catch (e) {
      if (e instanceof BackdoorLensError) outcome = 'error';
      else {
        outcome = 'crash';
        detail = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack?.split('\n').slice(1, 4).join('\n')}` : String(e);
      }
    }
    const extraBytes = Math.max(0, memory() - before);
    result = undefined;
    parentPort!.postMessage({ kind: 'done', index, outcome, detail, extraBytes, size: bytes.length } satisfies WorkerMessage);
  }
  parentPort!.postMessage({ kind: 'finished' } satisfies WorkerMessage);
}

if (parentPort && workerData) void main(workerData as WorkerInput);
