/**
 * Data-free detection (MM-BD, no --data) on the development zoo: per model and export (BN kept,
 * BN folded) the truth, the verdict and target of each seed, the statistic that decided (the
 * largest maximum margin and the p-value of the order-statistic test) against the threshold,
 * and the time (wall and process CPU, which waiting for a core does not inflate). Totals: right
 * verdicts, right targets, clean controls flagged, models whose seeds disagree.
 *   npm run bench -- efficacy-datafree
 * Environment: BL_SEEDS (default 0,1,2), BL_ZOO_FILTER (substring of model names),
 * BL_WITH_DATA=1 also runs the class-pair detector with the zoo's 1 000 clean images and reports
 * whether MM-BD changes its verdict (BN-kept exports, first seed).
 */
import { imageInputOf, loadDataset, loadModel, Runtime, scan, type ScanReport } from '../../engine';
import type { Row } from '../run';
import { zooMissing, zooModels, type ZooModel } from '../zoo';

export const name = 'Data-free detection (MM-BD, no data) on the development zoo';

const seeds = (process.env.BL_SEEDS ?? '0,1,2').split(',').map(Number);

interface Outcome {
  verdict: string;
  target: number | null;
  margin: number;
  next: number;
  p: number;
  threshold: number;
  wall: number;
  cpu: number;
}

async function dataFree(runtime: Runtime, path: string, seed: number): Promise<Outcome> {
  const model = await loadModel(path);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const { report } = await scan(model, { runtime, methods: ['mmbd'], seed });
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const run = report.methods[0];
  if (run.status !== 'ran') throw new Error(`${path}: mmbd ${run.status}: ${run.reason}`);
  const e = report.evidence[0];
  const margins = report.labels.map((l) => l.statistic!).sort((a, b) => b - a);
  const top = report.labels.reduce((a, b) => (b.statistic! > a.statistic! ? b : a));
  return { verdict: report.verdict, target: report.verdict === 'backdoored' ? report.targets[0] : top.label, margin: margins[0], next: margins[1], p: e.value, threshold: e.threshold, wall, cpu: (c.user + c.system) / 1e6 };
}

const rightVerdict = (m: ZooModel, o: Outcome) => (o.verdict === 'backdoored') === m.truth.backdoored;
/** All-to-one: the flagged class is the target; all-to-all: every class is a target, so any flagged class is. */
const rightTarget = (m: ZooModel, o: Outcome) => m.truth.backdoored && o.verdict === 'backdoored' && m.truth.targets.includes(o.target!);

async function withData(runtime: Runtime, m: ZooModel): Promise<Row> {
  const model = await loadModel(m.onnx);
  const data = loadDataset({ path: m.clean }, imageInputOf(model.onnx));
  const verdicts = async (methods: string[]): Promise<ScanReport> => (await scan(model, { runtime, data, methods, seed: seeds[0] })).report;
  const pairs = await verdicts(['pairs']);
  const both = await verdicts(['pairs', 'mmbd']);
  return {
    model: m.truth.name,
    truth: m.truth.backdoored ? `${m.truth.mode} ${m.truth.targets.length > 3 ? 'all' : m.truth.targets.join(',')}` : 'clean',
    'pairs verdict': `${pairs.verdict} ${pairs.targets.join(',')}`,
    'pairs + mmbd verdict': `${both.verdict} ${both.targets.join(',')}`,
    'mmbd changes it': pairs.verdict !== both.verdict || pairs.targets.join() !== both.targets.join() ? 'yes' : 'no',
  };
}

export async function run(): Promise<Row[]> {
  const filter = process.env.BL_ZOO_FILTER;
  const models = zooModels((t) => !filter || t.name.includes(filter));
  if (models.length === 0) return [{ model: zooMissing }];
  const runtime = new Runtime({ threads: 2 });
  const rows: Row[] = [];
  const totals = { runs: 0, verdicts: 0, backdoored: 0, targets: 0, clean: 0, cleanFlagged: 0, unstable: 0, slowest: 0 };
  try {
    for (const m of models) {
      for (const [exportName, path] of [['BN kept', m.onnx], ['BN folded', m.folded]] as const) {
        const outcomes: Outcome[] = [];
        for (const seed of seeds) outcomes.push(await dataFree(runtime, path, seed));
        const o = outcomes[0];
        const stable = outcomes.every((x) => x.verdict === o.verdict && x.target === o.target);
        totals.runs++;
        if (rightVerdict(m, o)) totals.verdicts++;
        if (m.truth.backdoored) {
          totals.backdoored++;
          if (rightTarget(m, o)) totals.targets++;
        } else {
          totals.clean++;
          if (o.verdict === 'backdoored') totals.cleanFlagged++;
        }
        if (!stable) totals.unstable++;
        totals.slowest = Math.max(totals.slowest, ...outcomes.map((x) => x.wall));
        rows.push({
          model: m.truth.name,
          export: exportName,
          truth: m.truth.backdoored ? `${m.truth.mode} ${m.truth.targets.length > 3 ? 'all' : m.truth.targets.join(',')}` : 'clean',
          verdict: o.verdict,
          target: o.verdict === 'backdoored' ? String(o.target) : '–',
          right: `${rightVerdict(m, o) ? 'verdict' : 'WRONG verdict'}${m.truth.backdoored && o.verdict === 'backdoored' ? (rightTarget(m, o) ? ', target' : ', WRONG target') : ''}`,
          'max margin (class)': `${o.margin.toFixed(1)} (${o.target})`,
          next: o.next.toFixed(1),
          p: o.p === 0 ? '0' : o.p < 1e-3 ? o.p.toExponential(1) : o.p.toFixed(3),
          threshold: o.threshold,
          [`seeds ${seeds.join(',')}`]: stable ? 'agree' : outcomes.map((x) => `${x.verdict === 'backdoored' ? `T${x.target}` : 'clean'} p=${x.p.toPrecision(2)}`).join(' / '),
          's (wall)': o.wall,
          's (CPU)': o.cpu,
        });
      }
    }
    rows.push({
      model: 'TOTAL',
      export: `${totals.runs} runs`,
      truth: `${totals.backdoored} backdoored, ${totals.clean} clean`,
      verdict: `${totals.verdicts}/${totals.runs} right`,
      target: `${totals.targets}/${totals.backdoored} right`,
      right: `${totals.cleanFlagged}/${totals.clean} clean flagged`,
      [`seeds ${seeds.join(',')}`]: `${totals.unstable} disagree`,
      's (wall)': `max ${totals.slowest.toFixed(1)}`,
    });
    if (process.env.BL_WITH_DATA === '1') for (const m of models) rows.push(await withData(runtime, m));
  } finally {
    await runtime.dispose();
  }
  return rows;
}
