/**
 * The run-time bounds of issue 15 on the hostile fixtures, through the built CLI as a user runs it:
 * peak resident memory of the whole process tree (the CLI and its job) and wall time, for the
 * ConstantOfShape bombs under --max-memory 1000 and the Loops under the default time limit (1800 s)
 * or a short one. `npm run build` first.
 *   npm run bench -- limits
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { residentBytes } from '../../engine';
import { processTree } from '../../test/helpers';
import type { Row } from '../run';

export const name = 'run-time bounds (hostile fixtures, built CLI)';

const root = join(__dirname, '..', '..');
const hostile = join(root, 'fixtures', 'hostile');
const tiny = join(hostile, 'tiny.npz');

/** Runs the CLI, sampling the whole tree's resident memory every 20 ms. */
function measure(args: string[]): Promise<{ exit: number; wallS: number; peakMiB: number; stderr: string }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [join(root, 'bin', 'backdoor-lens.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let peak = 0;
    const timer = setInterval(() => {
      const total = processTree(child.pid!).reduce((sum, p) => sum + (residentBytes(p) ?? 0), 0);
      peak = Math.max(peak, total);
    }, 20);
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ exit: code ?? -1, wallS: (Date.now() - t0) / 1000, peakMiB: Math.round(peak / 2 ** 20), stderr: stderr.trim().split('\n').at(-1) ?? '' });
    });
  });
}

const cases: { input: string; limits: string; args: string[] }[] = [
  { input: 'ConstantOfShape 2^30 floats, constant shape', limits: '--max-memory 1000', args: ['eval', join(hostile, 'constant-of-shape-bomb.onnx'), '--data', tiny, '--max-memory', '1000'] },
  { input: 'ConstantOfShape 2^30 floats, shape from the input', limits: '--max-memory 1000', args: ['eval', join(hostile, 'constant-of-shape-dynamic.onnx'), '--data', tiny, '--max-memory', '1000'] },
  { input: 'Loop of 10^15 trips', limits: 'default (1800 s)', args: ['eval', join(hostile, 'loop-bomb.onnx'), '--data', tiny] },
  { input: 'Loop with no trip count (never ends)', limits: '--time-limit 10', args: ['eval', join(hostile, 'loop-forever.onnx'), '--data', tiny, '--time-limit', '10'] },
  { input: 'scan of the BadNets CNN (clp, pairs)', limits: '--time-limit 30', args: ['scan', join(root, 'fixtures/fmnist/badnets/model.onnx'), '--data', join(root, 'fixtures/fmnist/data/clean.npz'), '--methods', 'clp,pairs', '--time-limit', '30'] },
];

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const c of cases) {
    const r = await measure(c.args);
    const how = /would make a tensor|would run \d+ trips/.test(r.stderr) ? 'refused before a session' : /memory limit/.test(r.stderr) ? 'ended at the memory limit' : /time limit/.test(r.stderr) ? 'ended at the time limit' : r.stderr.slice(0, 40);
    rows.push({ input: c.input, limits: c.limits, outcome: how, exit: r.exit, 'wall s': r.wallS, 'peak RSS MiB (CLI + job)': r.peakMiB });
  }
  return rows;
}
