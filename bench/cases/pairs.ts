/**
 * The class-pair scan of the fixture CNN (10 classes, 1 000 clean images): the plain schedule
 * (every pair to Neural Cleanse's own stop rule) against the bandit (lockstep successive
 * elimination, decision at a common step). Same per-pair optimisation, batched the same way.
 */
import { join } from 'node:path';
import { imageInputOf, loadDataset, loadModel, Runtime, scan } from '../../engine';
import type { Row } from '../run';
import { root } from '../models';

export const name = 'Class-pair trigger reversal: plain vs scheduled (fixture CNN, 90 pairs, 1 000 clean images, CPU)';

async function once(fixture: string, schedule: 'plain' | 'bandit'): Promise<Row & { detected: string }> {
  const model = await loadModel(join(root, `fixtures/fmnist/${fixture}/model.onnx`));
  const data = loadDataset({ path: join(root, 'fixtures/fmnist/data/clean.npz') }, imageInputOf(model.onnx));
  const runtime = new Runtime();
  try {
    const t0 = performance.now();
    const { report } = await scan(model, { runtime, data, methods: ['pairs'], methodOptions: { pairs: { schedule } } });
    const seconds = (performance.now() - t0) / 1000;
    const run = report.methods.find((m) => m.method === 'pairs')!;
    const detected = report.pairs.filter((p) => p.flagged).map((p) => `${p.source}→${p.target}`).join(' ') || '(none)';
    return { fixture, schedule, seconds, 'gradient evaluations': run.gradientEvaluations ?? 0, detected, verdict: report.verdict, attack: report.attackType ?? '-' };
  } finally {
    await runtime.dispose();
  }
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const fixture of ['badnets', 'clean', 'all2all']) {
    const plain = await once(fixture, 'plain');
    const bandit = await once(fixture, 'bandit');
    const evals = (r: Row) => Number(r['gradient evaluations']);
    rows.push(plain, { ...bandit, 'fewer evaluations': `${(evals(plain) / evals(bandit)).toFixed(2)}×`, 'same pairs': plain.detected === bandit.detected ? 'yes' : 'NO' });
  }
  return rows;
}
