/**
 * ANP's interactive schedule beside the authors' (issue 19 point 5), on a zoo ResNet-18 (CIFAR
 * layout, width 16, 3×32×32): the mask trajectory of each schedule, with what its pruning would
 * be at every check (the clean-data threshold and the channels under it) and what that pruning
 * does to the true backdoor (test accuracy on test.npz, ASR on triggered.npz). The defence sees
 * only clean.npz; the true trigger only grades. Each schedule runs all its iterations (the
 * stopping rule off) so the table shows where the rule stops and what running on would change.
 * Snapshots of the masks are kept in .cache/bench/anp-<model>-<schedule>.json.
 *
 *   BENCH_ANP_MODEL=name          zoo model (default rn32-badnets-white4-t6)
 *   BENCH_ANP_SCHEDULES=a,b       schedules (default reference,interactive; a reference run of an
 *                                 earlier process is read back from its snapshot file)
 *   BENCH_ANP_ITERATIONS=N        iterations per schedule (default the authors' 2000)
 *   BENCH_ANP_THREADS=N           onnxruntime threads (default 2)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluate, imageInputOf, loadDataset, loadModel } from '../../engine';
import { anpSettings, chooseThreshold, optimiseMasks, prunedAt, settledPruning, type AnpSchedule, type ChannelValues, type PruningCheck } from '../../engine/analyses/methods/anp';
import { ownParameters, preActivationLayers } from '../../engine/analyses/neurons/layers';
import { pruneNeurons, type NeuronRef } from '../../engine/analyses/neurons/prune';
import type { GatedModel } from '../../engine/analyses/neurons/gates';
import { Runtime } from '../../engine/runtime';
import { root } from '../../bench/models';
import type { Row } from '../../bench/run';
import { zooMissing, zooModels } from '../../bench/zoo';

export const name = "ANP's interactive schedule beside the reference schedule on a zoo ResNet-18 (masks, pruning, true ASR)";

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

interface Check extends PruningCheck {
  seconds: number;
}

const key = (p: NeuronRef) => `${p.layer}:${p.channel}`;
function jaccard(a: Check['pruned'], b: Check['pruned']): number {
  const sa = new Set(a.map(key)), sb = new Set(b.map(key));
  const both = [...sa].filter((k) => sb.has(k)).length;
  return sa.size + sb.size === 0 ? 1 : both / (sa.size + sb.size - both);
}

export async function run(): Promise<Row[]> {
  const wanted = process.env.BENCH_ANP_MODEL ?? 'rn32-badnets-white4-t6';
  const z = zooModels((t) => t.name === wanted)[0];
  if (!z) return [{ model: wanted, note: zooMissing }];
  const schedules = (process.env.BENCH_ANP_SCHEDULES ?? 'reference,interactive').split(',') as AnpSchedule[];
  const iterations = Number(process.env.BENCH_ANP_ITERATIONS ?? 2000);
  const runtime = new Runtime({ threads: Number(process.env.BENCH_ANP_THREADS ?? 2) });
  const loaded = await loadModel(z.onnx);
  const model = ownParameters(loaded.onnx);
  const spec = imageInputOf(model);
  const clean = loadDataset({ path: z.clean }, spec), test = loadDataset({ path: z.test }, spec), triggered = loadDataset({ path: z.triggered! }, spec);
  const attack = z.truth.mode === 'all-to-all' ? { allToAll: true } : { target: z.truth.targets[0] };
  const layers = preActivationLayers(model);
  const signal = new AbortController().signal;
  const base = { acc: (await evaluate(model, test, runtime)).accuracy!, asr: (await evaluate(model, triggered, runtime, attack)).asr! };
  const rows: Row[] = [{ model: z.truth.name, schedule: '(none)', iteration: 0, 'test acc': pct(base.acc), 'true ASR': pct(base.asr) }];
  // The reference schedule's checks by iteration: each interactive check is compared with the reference's at the same iteration.
  const referenceAt = new Map<number, Check>();
  const snapshotFile = (schedule: AnpSchedule) => join(root, `.cache/bench/anp-${z.truth.name}-${schedule}.json`);
  if (existsSync(snapshotFile('reference'))) {
    const saved = JSON.parse(readFileSync(snapshotFile('reference'), 'utf8')) as { checks: Check[] };
    for (const c of saved.checks) referenceAt.set(c.iteration, c);
  }
  mkdirSync(join(root, '.cache/bench'), { recursive: true });
  for (const schedule of schedules) {
    const s = { ...anpSettings({ schedule }), iterations };
    const checks: Check[] = [];
    const snapshots: { iteration: number; masks: Record<string, number[]> }[] = [];
    let paused = 0;
    const t0 = performance.now();
    // The stopping rule is off (checks happen here, not in the run); the time spent checking is not counted.
    const settings = { ...s, checkEvery: iterations + 1 };
    const observe = async (iteration: number, masks: ChannelValues, gated: GatedModel) => {
      if (iteration % s.checkEvery !== 0 && iteration !== iterations) return;
      const p0 = performance.now();
      const choice = await chooseThreshold(runtime, gated, masks, clean, s.budget, { batchSize: 250, signal });
      const pruned = prunedAt(masks, choice.threshold);
      checks.push({ iteration, seconds: (p0 - t0 - paused) / 1000, threshold: choice.threshold, pruned });
      snapshots.push({ iteration, masks: Object.fromEntries([...masks].map(([l, m]) => [l, Array.from(m, (v) => Math.round(v * 1e5) / 1e5)])) });
      paused += performance.now() - p0;
    };
    await optimiseMasks(model, layers, clean, settings, { runtime, seed: 0, signal, progress: () => {}, batchSize: 250, observe });
    writeFileSync(snapshotFile(schedule), JSON.stringify({ schedule, iterations, checks, snapshots }));
    // Where the interactive stopping rule would have stopped on this trajectory.
    const stopAt = schedule === 'interactive' ? settledPruning(checks, s) : undefined;
    if (schedule === 'reference') for (const c of checks) referenceAt.set(c.iteration, c);
    for (const c of checks) {
      if (c.iteration % (4 * s.checkEvery) !== 0 && c.iteration !== stopAt && c !== checks[checks.length - 1]) continue;
      const pruned = pruneNeurons(model, c.pruned);
      const acc = (await evaluate(pruned, test, runtime)).accuracy!, asr = (await evaluate(pruned, triggered, runtime, attack)).asr!;
      const ref = referenceAt.get(c.iteration);
      rows.push({
        model: z.truth.name, schedule, iteration: c.iteration, seconds: c.seconds, threshold: c.threshold, pruned: c.pruned.length,
        'test acc': pct(acc), 'Δ acc': (100 * (acc - base.acc)).toFixed(1), 'true ASR': pct(asr),
        'ref. pruned then': ref && schedule !== 'reference' ? ref.pruned.length : '',
        'same channels as ref. (Jaccard)': ref && schedule !== 'reference' ? jaccard(c.pruned, ref.pruned).toFixed(2) : '',
        note: c.iteration === stopAt ? 'the stopping rule stops here' : '',
      });
    }
  }
  await runtime.dispose();
  return rows;
}
