/**
 * Detection efficacy on the development zoo: the default scan (every default method, default
 * options) of every zoo model with its 1 000-image clean set, for the BatchNorm-kept and the
 * BatchNorm-folded export, and the data-free scan (no --data). Prints one row per model and
 * export with the truth, the verdict, the targets and mode, the evidence that decided, and the
 * seconds; then totals. Reports land in .cache/efficacy/ for inspection.
 *
 *   npm run bench -- efficacy                      all models, seed 0
 *   BENCH_ZOO=cnn-,rn-clean BENCH_SEEDS=0,1,2 npm run bench -- efficacy
 *   BENCH_EXPORTS=onnx BENCH_DATAFREE=0 npm run bench -- efficacy
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { imageInputOf, loadDataset, loadModel, Runtime, scan, type ScanReport } from '../../engine';
import { root } from '../models';
import type { Row } from '../run';
import { zooMissing, zooModels, type ZooModel } from '../zoo';

export const name = 'Detection efficacy on the development zoo (default scan, 1 000 clean images; data-free scan)';

const list = (v: string | undefined, d: string) => (v ?? d).split(',').map((s) => s.trim()).filter(Boolean);
const seeds = list(process.env.BENCH_SEEDS, '0').map(Number);
const exports = list(process.env.BENCH_EXPORTS, 'onnx,folded') as ('onnx' | 'folded')[];
const dataFree = process.env.BENCH_DATAFREE !== '0';
const filters = list(process.env.BENCH_ZOO, '');
const outDir = join(root, '.cache/efficacy');

interface Outcome {
  verdictRight: boolean;
  targetRight: boolean;
  modeRight: boolean;
}

/** Right verdict; right targets (all-to-one: exactly the target); right mode. */
export function judge(m: ZooModel, report: ScanReport): Outcome {
  const t = m.truth;
  const flagged = report.verdict === 'backdoored';
  const verdictRight = t.backdoored ? flagged : report.verdict === 'clean';
  if (!t.backdoored) return { verdictRight, targetRight: verdictRight, modeRight: verdictRight };
  const targetRight = t.mode === 'all-to-one' ? report.targets.length === 1 && report.targets[0] === t.targets[0] : flagged && report.targets.length >= Math.ceil(t.targets.length / 2);
  return { verdictRight, targetRight: flagged && targetRight, modeRight: flagged && report.attackType === t.mode };
}

/** Two decimals, or two significant digits for small values (MM-BD's p-values against 1e-4 read "0.00 < 0.00" otherwise). */
const statistic = (x: number) => (x === 0 || Math.abs(x) >= 0.01 ? x.toFixed(2) : x.toExponential(1));

function deciding(report: ScanReport): string {
  const e = report.evidence.find((x) => x.flagged) ?? [...report.evidence].sort((a, b) => b.value / b.threshold - a.value / a.threshold)[0];
  if (!e) return '-';
  return `${e.method} ${statistic(e.value)} ${e.direction === 'above' ? (e.flagged ? '>' : '≤') : e.flagged ? '<' : '≥'} ${statistic(e.threshold)}`;
}

async function scanOne(m: ZooModel, exp: 'onnx' | 'folded', seed: number, withData: boolean): Promise<{ report: ScanReport; seconds: number }> {
  const model = await loadModel(exp === 'onnx' ? m.onnx : m.folded);
  const runtime = new Runtime();
  try {
    const data = withData ? loadDataset({ path: m.clean }, imageInputOf(model.onnx)) : undefined;
    const t0 = performance.now();
    const { report } = await scan(model, { runtime, data, seed });
    return { report, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await runtime.dispose();
  }
}

export async function run(): Promise<Row[]> {
  const models = zooModels((t) => filters.length === 0 || filters.some((f) => t.name.includes(f)));
  if (models.length === 0) return [{ note: zooMissing }];
  mkdirSync(outDir, { recursive: true });
  const rows: Row[] = [];
  const totals = new Map<string, { n: number; verdict: number; target: number; mode: number; seconds: number[] }>();
  // Per scenario and model, each seed's verdict and targets: the issue asks that seeds agree on both.
  const bySeed = new Map<string, Map<string, { verdict: string; targets: string }[]>>();
  const scenarios: { exp: 'onnx' | 'folded'; withData: boolean; label: string }[] = [
    ...exports.map((exp) => ({ exp, withData: true, label: `${exp} + data` })),
    ...(dataFree ? exports.map((exp) => ({ exp, withData: false, label: `${exp}, data-free` })) : []),
  ];
  for (const m of models) {
    for (const sc of scenarios) {
      for (const seed of seeds) {
        const { report, seconds } = await scanOne(m, sc.exp, seed, sc.withData);
        writeFileSync(join(outDir, `${m.truth.name}.${sc.exp}${sc.withData ? '' : '.datafree'}.seed${seed}.json`), JSON.stringify(report, null, 1));
        const o = judge(m, report);
        const t = m.truth;
        // A line as each scan ends: the whole table only prints after hours of scans.
        console.error(`efficacy: ${t.name} ${sc.label} seed ${seed}: ${report.verdict} [${report.targets.join(' ')}] ${report.attackType ?? '-'} · ${deciding(report)} · ${o.verdictRight ? (o.targetRight ? 'right' : 'wrong target') : 'WRONG'} · ${seconds.toFixed(1)} s`);
        rows.push({
          model: t.name,
          scan: sc.label,
          seed,
          truth: t.backdoored ? `${t.attack} ${t.mode === 'all-to-one' ? `→${t.targets[0]}` : 'a2a'}` : 'clean',
          verdict: report.verdict,
          targets: report.targets.join(' ') || '-',
          mode: report.attackType ?? '-',
          decided: deciding(report),
          right: o.verdictRight ? (o.targetRight ? (o.modeRight ? 'yes' : 'mode?') : 'target?') : 'NO',
          seconds,
        });
        const runs = bySeed.get(sc.label) ?? new Map<string, { verdict: string; targets: string }[]>();
        runs.set(t.name, [...(runs.get(t.name) ?? []), { verdict: report.verdict, targets: report.targets.join(' ') }]);
        bySeed.set(sc.label, runs);
        const tot = totals.get(sc.label) ?? { n: 0, verdict: 0, target: 0, mode: 0, seconds: [] };
        tot.n++;
        tot.verdict += Number(o.verdictRight);
        tot.target += Number(o.verdictRight && o.targetRight);
        tot.mode += Number(o.verdictRight && o.targetRight && o.modeRight);
        tot.seconds.push(seconds);
        totals.set(sc.label, tot);
      }
    }
  }
  for (const [label, t] of totals) {
    const s = [...t.seconds].sort((a, b) => a - b);
    rows.push({ model: 'TOTAL', scan: label, truth: `${t.n} scans`, verdict: `${t.verdict}/${t.n} right`, targets: `${t.target}/${t.n} right`, mode: `${t.mode}/${t.n} right`, seconds: s[Math.floor(s.length / 2)] });
  }
  if (seeds.length > 1) {
    for (const [label, runs] of bySeed) {
      const all = [...runs.values()];
      const verdicts = all.filter((r) => r.every((x) => x.verdict === r[0].verdict)).length;
      const same = (r: { verdict: string; targets: string }[]) => r.every((x) => x.verdict === r[0].verdict && x.targets === r[0].targets);
      const targets = all.filter(same).length;
      const differing = [...runs].filter(([, r]) => !same(r)).map(([name]) => name);
      rows.push({ model: 'SEEDS AGREE', scan: label, truth: `${all.length} models × ${seeds.length} seeds`, verdict: `${verdicts}/${all.length} same`, targets: `${targets}/${all.length} same`, decided: differing.length ? `differ: ${differing.join(', ')}` : 'all agree' });
    }
  }
  return rows;
}
