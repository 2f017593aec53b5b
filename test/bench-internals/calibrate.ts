/**
 * Calibration of the detectors' thresholds on the development zoo's clean controls only: the
 * default trigger-reversal scan of every clean model (both exports, seeds 0–2), the value of every
 * screen's statistic, and engine/analyses/reversal/calibration.json rewritten with them (the thresholds
 * are the highest clean value × the margin, see engine/analyses/reversal/calibration.ts).
 *
 *   npm run bench -- calibrate          BENCH_CALIBRATE_WRITE=0 to print without writing
 *   BENCH_ZOO=rn32-clean npm run bench -- calibrate   measure these clean models only and keep
 *                                                     the recorded values of the others
 *   BENCH_CALIBRATE_TRAINING=2 npm run bench -- calibrate
 *       the zoo was trained again (training is not bit-reproducible): keep every recorded value and
 *       add this training's, named "cnn-clean-a (training 2)", so the thresholds rest on both
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset, loadModel, Runtime, scan } from '../../engine';
import { calibration, networkFamily, screenThreshold, type CalibrationRecord, type CleanValue, type NetworkFamily, type ScreenKey } from '../../engine/analyses/reversal/calibration';
import { imageInputOf } from '../../engine/evaluate';
import { root } from '../../bench/models';
import type { Row } from '../../bench/run';
import { zooMissing, zooModels } from '../../bench/zoo';

export const name = 'Threshold calibration on the clean controls of the development zoo (trigger-reversal screens)';

const seeds = (process.env.BENCH_SEEDS ?? '0,1,2').split(',').map(Number);
const only = (process.env.BENCH_ZOO ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const training = process.env.BENCH_CALIBRATE_TRAINING;
const recordedName = (model: string) => (training ? `${model} (training ${training})` : model);

export async function run(): Promise<Row[]> {
  const clean = zooModels((t) => !t.backdoored && (only.length === 0 || only.some((f) => t.name.startsWith(f))));
  if (clean.length === 0) return [{ note: zooMissing }];
  const values = new Map<string, CleanValue[]>();
  if (only.length || training) {
    const measured = new Set(clean.map((m) => recordedName(m.truth.name)));
    for (const [key, list] of Object.entries(calibration.screens)) values.set(key, list.filter((c) => !measured.has(c.model)));
  }
  for (const m of clean) {
    for (const exp of ['onnx', 'folded'] as const) {
      const model = await loadModel(exp === 'onnx' ? m.onnx : m.folded);
      const data = loadDataset({ path: m.clean }, imageInputOf(model.onnx));
      for (const seed of seeds) {
        const runtime = new Runtime();
        try {
          const { report } = await scan(model, { runtime, data, seed, methods: ['pairs'] });
          for (const e of report.evidence) {
            const key = e.method.replace(/^pairs:/, '');
            if (!/^(targets|shifts):/.test(key)) continue;
            (values.get(key) ?? values.set(key, []).get(key)!).push({ family: networkFamily(model.onnx), model: recordedName(m.truth.name), export: exp, seed, value: Math.round(e.value * 1e4) / 1e4 });
          }
        } finally {
          await runtime.dispose();
        }
      }
    }
  }
  const record: CalibrationRecord = {
    margin: calibration.margin,
    made: `npm run bench -- calibrate on ${new Date().toISOString().slice(0, 10)}: ${new Set([...values.values()].flat().map((c) => c.model)).size} clean zoo models${training ? ` (two trainings of the clean controls; training ${training} added)` : ''} × 2 exports × seeds ${seeds.join(', ')}`,
    screens: Object.fromEntries([...values].sort(([a], [b]) => a.localeCompare(b))),
  };
  if (process.env.BENCH_CALIBRATE_WRITE !== '0') writeFileSync(join(root, 'engine/analyses/reversal/calibration.json'), `${JSON.stringify(record, null, 1)}\n`);
  Object.assign(calibration, record);
  return [...values.keys()].sort().flatMap((key) =>
    (['plain', 'residual'] as NetworkFamily[]).flatMap((family) => {
      const v = values.get(key)!.filter((c) => c.family === family).map((c) => c.value).sort((a, b) => a - b);
      if (v.length === 0) return [];
      const t = screenThreshold(key as ScreenKey, family);
      return [{ screen: key, family, scans: v.length, lowest: v[0], median: v[Math.floor(v.length / 2)], highest: v[v.length - 1], threshold: t.value }];
    }),
  );
}
