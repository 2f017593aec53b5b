/**
 * The fixes table over the development zoo (npm run bench -- efficacy-fixes): for every
 * backdoored model (BatchNorm kept), one default scan on the defender's clean set, then each
 * fix and `auto` exactly as a user runs them (fitted on the clean set, measuring themselves on
 * its held-out part, a removal confirmed by a rescan). The fix never sees the true trigger; the
 * table measures it afterwards: clean accuracy on test.npz (2 000 held-out images) and the true
 * attack success rate on triggered.npz, before and after. "goal" is the issue's: true ASR ≤ 2%
 * within 1.5 points of clean accuracy. "stated" is the outcome the fix claimed for itself;
 * "honest" says whether the claim holds against the true trigger (a "removed" that the true
 * trigger contradicts is a miss of the fix's own measurement).
 *
 *   BENCH_ZOO_MODELS=a,b   only these models          BENCH_FIX_METHODS=clp,bna   only these methods
 *   BENCH_FIX_RESCAN=0     no confirming rescan (faster; "stated" is then the held-out measurement alone)
 */
import { applyFix, evaluate, imageInputOf, loadDataset, loadModel, Runtime, scan, type FixResult } from '../../engine';
import { table, type Row } from '../run';
import { zooMissing, zooModels, type ZooModel } from '../zoo';

export const name = 'Fixes on the development zoo: true ASR and clean accuracy before and after (the fix never sees the true trigger)';

const METHODS = ['clp', 'bnp', 'fp', 'bna', 'unlearn', 'adv-unlearn', 'auto'];
const GOAL = 0.02, BUDGET = 0.015;
const rescan = process.env.BENCH_FIX_RESCAN !== '0';
const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);

function selected(list: string | undefined, all: string[]): string[] {
  return list ? all.filter((m) => list.split(',').includes(m)) : all;
}

async function rowsFor(z: ZooModel, runtime: Runtime, methods: string[]): Promise<Row[]> {
  const model = await loadModel(z.onnx);
  const spec = imageInputOf(model.onnx);
  const clean = loadDataset({ path: z.clean }, spec), test = loadDataset({ path: z.test }, spec), triggered = loadDataset({ path: z.triggered! }, spec);
  const attack = z.truth.mode === 'all-to-all' ? { allToAll: true } : { target: z.truth.targets[0] };
  const measure = async (m: typeof model.onnx) => ({ acc: (await evaluate(m, test, runtime)).accuracy!, asr: (await evaluate(m, triggered, runtime, attack)).asr! });
  const base = await measure(model.onnx);
  const t0 = performance.now();
  const scanned = await scan(model, { runtime, data: clean });
  const scanSeconds = (performance.now() - t0) / 1000;
  const truth = `${z.truth.attack} ${z.truth.mode === 'all-to-all' ? 'a2a' : `→${z.truth.targets[0]}`}`;
  const rows: Row[] = [{
    model: z.truth.name, attack: truth, method: '(scan)', stated: scanned.report.verdict, 'est. ASR': '', 'true ASR': pct(base.asr), 'test acc': pct(base.acc), 'Δ acc': '', goal: '', honest: '',
    seconds: scanSeconds, note: `targets ${scanned.report.targets.join(', ') || '—'}`,
  }];
  for (const method of methods) {
    const t1 = performance.now();
    let r: FixResult;
    try {
      r = await applyFix(model, { method, runtime, data: clean, previous: scanned.outputs, ...(rescan ? {} : { rescan: false }) });
    } catch (e) {
      rows.push({ model: z.truth.name, attack: truth, method, stated: 'error', note: (e as Error).message.slice(0, 100) });
      continue;
    }
    const seconds = (performance.now() - t1) / 1000;
    const after = r.model ? await measure(r.model) : undefined;
    const loss = after ? base.acc - after.acc : null;
    const met = !!after && after.asr <= GOAL && loss! <= BUDGET;
    rows.push({
      model: z.truth.name,
      attack: truth,
      method: method === 'auto' ? `auto → ${r.method}` : method,
      stated: rescan ? r.outcome : `${r.outcome} (no rescan)`,
      'est. ASR': r.measurement?.estimated ? `${pct(r.measurement.estimated.before)} → ${pct(r.measurement.estimated.after)}` : 'n/a',
      'true ASR': after ? `${pct(base.asr)} → ${pct(after.asr)}` : 'nothing written',
      'test acc': after ? `${pct(base.acc)} → ${pct(after.acc)}` : '',
      'Δ acc': loss === null ? '' : (-100 * loss).toFixed(1),
      goal: met ? 'met' : 'MISS',
      // A claimed removal the true trigger contradicts is the fix's own measurement failing.
      honest: r.outcome === 'removed' && !met ? 'NO' : 'yes',
      seconds,
      note: method === 'auto' ? (r.tried ?? []).map((t) => `${t.method} ${t.outcome} ${pct(t.estimated)}`).join('; ') : r.headline.slice(r.headline.indexOf('—') + 2, r.headline.indexOf('—') + 90),
    });
  }
  return rows;
}

export async function run(): Promise<Row[]> {
  const all = zooModels((t) => t.backdoored);
  if (all.length === 0) return [{ note: zooMissing }];
  const names = selected(process.env.BENCH_ZOO_MODELS, all.map((m) => m.truth.name));
  const methods = selected(process.env.BENCH_FIX_METHODS, METHODS);
  const runtime = new Runtime({ threads: 2 });
  const rows: Row[] = [];
  try {
    for (const z of all.filter((m) => names.includes(m.truth.name) && m.triggered)) {
      const mine = await rowsFor(z, runtime, methods);
      rows.push(...mine);
      // Printed as each model ends: the whole table takes long on a loaded machine.
      console.error(table(mine));
      // One model's sessions (the scan's gradient graphs, every fixed copy) are not needed by the next.
      await runtime.dispose();
    }
  } finally {
    await runtime.dispose();
  }
  const fixes = rows.filter((r) => r.method !== '(scan)' && r.stated !== 'error');
  const autos = fixes.filter((r) => String(r.method).startsWith('auto'));
  rows.push({ model: 'TOTAL', method: 'auto', goal: `${autos.filter((r) => r.goal === 'met').length}/${autos.length} met`, honest: `${fixes.filter((r) => r.honest === 'NO').length} false "removed" of ${fixes.length}` });
  return rows;
}
