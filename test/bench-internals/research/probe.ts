/** Research probe: per-target (all sources) or per-pair reversal statistics for one model and objective. */
import { loadDataset, loadModel, Runtime } from '../../../engine';
import { imageInputOf, predict } from '../../../engine/evaluate';
import { stampTrigger } from '../../../engine/analyses/reversal/trigger';
import { subset } from '../../../engine/data/types';
import { defaultSchedulerOptions } from '../../../engine/analyses/reversal/karm';
import { madAnomaly } from '../../../engine/analyses/stats/mad';
import { inputGradient } from '../../../engine/analyses/reversal/gradient';
import { geometryOf, makeTask, runTasks } from '../../../engine/analyses/reversal/run';
import { patchSchedule, perturbationSchedule } from '../../../engine/analyses/reversal/task';
import { imagesByClass } from '../../../engine/analyses/reversal/class-images';
import type { ObjectiveKind } from '../../../engine/analyses/reversal/objectives';
import { runScreens } from '../../../engine/analyses/reversal/targets';

const args = process.argv.slice(2);
const opt = (k: string, d: string) => { const i = args.indexOf(`--${k}`); return i >= 0 ? args[i + 1] : d; };

async function main() {
  const [modelPath, dataPath] = args;
  const kind = opt('objective', 'patch') as ObjectiveKind;
  const mode = opt('mode', 'target');
  const perClass = Number(opt('per-class', '20'));
  const batch = Number(opt('batch', '8'));
  const steps = Number(opt('steps', '150'));
  const lr = opt('lr', '');
  const model = await loadModel(modelPath);
  const data = loadDataset({ path: dataPath }, imageInputOf(model.onnx));
  const runtime = new Runtime({ threads: Number(opt('threads', '1')) });
  const K = model.numClasses ?? 10;
  const byClass = imagesByClass(data, K, perClass, 1);
  const geometry = geometryOf(data);
  const gradient = await inputGradient(runtime, model.onnx);
  const base = kind === 'patch' ? patchSchedule : { ...perturbationSchedule, ...(kind === 'warp' ? { lr: 0.02 } : {}) };
  const schedule = { ...base, batchSize: batch, maxSteps: steps, ...(lr ? { lr: Number(lr) } : {}) };
  const t0 = Date.now(), c0 = process.cpuUsage();
  if (mode === 'screens') {
    const kinds = opt('kinds', 'patch,perturbation,warp').split(',') as ObjectiveKind[];
    const { screens, sampleGradients } = await runScreens([{ family: 'targets', kinds }, { family: 'shifts', kinds: opt('shift-kinds', 'patch,perturbation').split(',') as ObjectiveKind[] }], byClass, data, geometry, gradient, { imagesPerClass: perClass, batchSize: batch, maxSteps: steps, maxBatch: 512 }, Number(opt('seed', '1')), undefined, () => {});
    const out: Record<string, unknown> = {};
    for (const sc of screens) {
      console.log(`${sc.family.padEnd(7)} ${sc.kind.padEnd(12)} R ${sc.ratio.toFixed(2)} best ${sc.best} | ${sc.sizes.map((v, i) => `${sc.indices[i]}:${v.toFixed(1)}${sc.succeeded[i] ? '' : '!'}`).join(' ')}`);
      out[`${sc.family}-${sc.kind}`] = { ratio: sc.ratio, best: sc.best, sizes: sc.sizes, ok: sc.succeeded };
    }
    console.log(`image gradients ${sampleGradients}, wall ${(Date.now() - t0) / 1000}s cpu ${(process.cpuUsage(c0).user / 1e6).toFixed(1)}s`);
    if (args.includes('--out')) { const { writeFileSync } = await import('node:fs'); writeFileSync(opt('out', ''), JSON.stringify(out)); }
  } else if (mode === 'battery') {
    const out: Record<string, unknown> = { model: modelPath };
    for (const o of ['patch', 'perturbation', 'warp'] as ObjectiveKind[]) {
      const sch = { ...(o === 'patch' ? patchSchedule : { ...perturbationSchedule, ...(o === 'warp' ? { lr: 0.02 } : {}) }), batchSize: 8, maxSteps: 150 };
      const tasks = Array.from({ length: K }, (_, t) => makeTask(t, o, t, byClass.flatMap((l, c) => (c === t ? [] : l)), geometry, sch, 1));
      await runTasks(tasks, { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: K }, data, gradient, { maxBatch: 512 });
      out[`target-${o}`] = tasks.map((t) => ({ size: t.size, ok: t.succeeded, steps: t.step, at50: t.sizeAt(Math.min(50, t.step)), at100: t.sizeAt(Math.min(100, t.step)) }));
      console.log(o, tasks.map((t) => `${t.size.toFixed(2)}${t.succeeded ? '' : '!'}`).join(' '));
    }
    const sch = { ...patchSchedule, batchSize: 4, maxSteps: 150 };
    const pairs = [];
    for (let s = 0; s < K; s++) for (let t = 0; t < K; t++) if (s !== t) pairs.push({ s, t, task: makeTask(s * K + t, 'patch', t, byClass[s], geometry, sch, 1) });
    await runTasks(pairs.map((p) => p.task), { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: 128 }, data, gradient, { maxBatch: 512 });
    out['pairs-patch'] = pairs.map((p) => ({ s: p.s, t: p.t, size: p.task.size, ok: p.task.succeeded, steps: p.task.step, at30: p.task.sizeAt(Math.min(30, p.task.step)), at50: p.task.sizeAt(Math.min(50, p.task.step)) }));
    const { writeFileSync, mkdirSync } = await import('node:fs');
    mkdirSync('.cache/probe', { recursive: true });
    writeFileSync(opt('out', '.cache/probe/out.json'), JSON.stringify(out));
    console.log(`wall ${(Date.now() - t0) / 1000}s cpu ${(process.cpuUsage(c0).user / 1e6).toFixed(1)}s`);
  } else if (mode === 'transfer') {
    const sch = { ...patchSchedule, batchSize: batch, maxSteps: steps };
    const pairs = [];
    for (let s = 0; s < K; s++) for (let t = 0; t < K; t++) if (s !== t) pairs.push({ s, t, task: makeTask(s * K + t, 'patch', t, byClass[s], geometry, sch, 1) });
    await runTasks(pairs.map((p) => p.task), { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: 128 }, data, gradient, { maxBatch: 512 });
    const held = imagesByClass(data, K, 100, 7).map((l) => l.slice(0, 30));
    const base: number[][] = [];
    for (let c = 0; c < K; c++) {
      const labels = (await predict(model.onnx, subset(data, held[c]), runtime)).labels;
      const counts = new Array(K).fill(0); for (const l of labels) counts[l] += 1 / labels.length; base.push(counts);
    }
    const top = [...pairs].sort((a, b) => a.task.size - b.task.size).slice(0, Number(opt('top', '12')));
    for (const p of top) {
      const trig = p.task.objective.toTrigger(p.t, [p.s], p.task.bestParams ?? p.task.objective.params);
      const moved: string[] = []; let score = 0;
      for (let c = 0; c < K; c++) {
        const labels = (await predict(model.onnx, stampTrigger(trig, data, held[c]), runtime)).labels;
        const counts = new Array(K).fill(0); for (const l of labels) counts[l] += 1 / labels.length;
        let d = -1, best = 0; for (let k = 0; k < K; k++) if (k !== c && counts[k] - base[c][k] > best) { best = counts[k] - base[c][k]; d = k; }
        moved.push(d < 0 ? '  -    ' : `${d}:${(100 * best).toFixed(0).padStart(3)}%`); if (c !== p.s) score += best / (K - 1);
      }
      console.log(`${p.s}->${p.t} size ${p.task.size.toFixed(2)} transfer ${score.toFixed(2)} | ${moved.join(' ')}`);
    }
    console.log(`wall ${(Date.now() - t0) / 1000}s cpu ${(process.cpuUsage(c0).user / 1e6).toFixed(1)}s`);
  } else if (mode === 'target') {
    const tasks = Array.from({ length: K }, (_, t) => makeTask(t, kind, t, byClass.flatMap((l, c) => (c === t ? [] : l)), geometry, schedule, 1));
    const stats = await runTasks(tasks, { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: K }, data, gradient, { maxBatch: 512 });
    const sizes = tasks.map((t) => t.size);
    const a = madAnomaly(sizes.map((s) => Math.log(s)));
    const rows = tasks.map((t, i) => `${i}: size ${t.size.toFixed(3)} ${t.succeeded ? 'ok' : 'FAIL'} steps ${t.step} anomaly(log, below) ${(sizes[i] < Math.exp(a.median) ? a.anomalyIndex[i] : -a.anomalyIndex[i]).toFixed(2)}`);
    console.log(rows.join('\n'));
    console.log(`image gradients ${stats.sampleGradients}, wall ${(Date.now() - t0) / 1000}s cpu ${(process.cpuUsage(c0).user / 1e6).toFixed(1)}s`);
  } else if (mode === 'away') {
    const all = byClass.flat();
    const task = makeTask(999, kind, 0, all, geometry, schedule, 1, undefined, true);
    const stats = await runTasks([task], { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: 1 }, data, gradient, { maxBatch: 512 });
    console.log(`away: size ${task.size.toFixed(3)} ${task.succeeded ? 'ok' : 'FAIL'} steps ${task.step}`);
    const held = imagesByClass(data, K, perClass * 2, 1).map((l) => l.slice(perClass));
    const trig = task.objective.toTrigger(0, [], task.bestParams ?? task.objective.params);
    for (let c = 0; c < K; c++) {
      const labels = (await predict(model.onnx, stampTrigger(trig, data, held[c]), runtime)).labels;
      const counts = new Array(K).fill(0);
      for (const l of labels) counts[l]++;
      console.log(`${c} -> ${counts.map((v) => String(v).padStart(3)).join(' ')}`);
    }
    console.log(`image gradients ${stats.sampleGradients}, wall ${(Date.now() - t0) / 1000}s cpu ${(process.cpuUsage(c0).user / 1e6).toFixed(1)}s`);
  } else {
    const tasks = [];
    for (let s = 0; s < K; s++) for (let t = 0; t < K; t++) if (s !== t) tasks.push(makeTask(s * K + t, kind, t, byClass[s], geometry, schedule, 1));
    const stats = await runTasks(tasks, { ...defaultSchedulerOptions, mode: 'plain', armsPerRound: 128 }, data, gradient, { maxBatch: 512 });
    const m: string[] = [];
    let i = 0;
    for (let s = 0; s < K; s++) {
      const row: string[] = [];
      for (let t = 0; t < K; t++) row.push(s === t ? '   -  ' : (tasks[i++].size).toFixed(2).padStart(6));
      m.push(`${s}: ${row.join(' ')}`);
    }
    console.log(m.join('\n'));
    console.log(`image gradients ${stats.sampleGradients}, wall ${(Date.now() - t0) / 1000}s cpu ${(process.cpuUsage(c0).user / 1e6).toFixed(1)}s`);
  }
  await runtime.dispose();
}
main();
