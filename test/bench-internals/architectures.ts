/**
 * The torchvision classification families as users export them (issue 16): random weights,
 * 3×224×224, 1 000 classes, BatchNorm folded by the exporter, opset 17. Per architecture: load
 * (read, hash, decode), forward ms per image and the input gradient's cost relative to the
 * forward pass (cross-entropy, batch 4, both on one intra-op thread, medians of 3 after a
 * warm-up), and the peak RSS of the whole run. Each architecture runs in a fresh process so that
 * its peak RSS is its own. The default-scan time over 1 000 classes belongs to the many-class
 * plan (issue 16, point 2) and is not measured here.
 * The exports (5–330 MB each) are made into .cache/torchvision by
 * tools/fixtures/torchvision_exports.py with Debian's python3-torch on first run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../engine';
import { GradientSession } from '../../engine/autodiff';
import { Runtime } from '../../engine/runtime';
import type { Tensor } from '../../engine/tensor';
import type { Row } from '../../bench/run';
import { root } from '../../bench/models';

export const name = 'torchvision architectures (1 000 classes, 224×224, opset 17, BN folded): load, forward, input gradient, peak RSS';

const architectures = [
  'resnet50', 'mobilenet_v3_small', 'efficientnet_b0', 'convnext_tiny', 'densenet121', 'regnet_y_400mf',
  'swin_t', 'vit_b_16', 'shufflenet_v2_x1_0', 'squeezenet1_1', 'googlenet',
];
const dir = join(root, '.cache/torchvision');
const batch = 4;
const reps = 3;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function exportPath(arch: string): string | undefined {
  const path = join(dir, `${arch}.opset17.onnx`);
  if (existsSync(path)) return path;
  const r = spawnSync('/usr/bin/python3', [join(root, 'tools/fixtures/torchvision_exports.py'), '--opset', '17', arch], { stdio: ['ignore', 'ignore', 'inherit'] });
  return r.status === 0 && existsSync(path) ? path : undefined;
}

/** One architecture in this (fresh) process; prints one JSON line. */
async function measure(path: string): Promise<void> {
  const t0 = performance.now();
  const model = await loadModel(path);
  const loadMs = performance.now() - t0;
  const input = model.onnx.inputs()[0];
  const dims = [batch, ...input.dims.slice(1).map(Number)];
  const size = dims.reduce((a, b) => a * b, 1);
  const x: Tensor = { dtype: 'float32', dims, data: Float32Array.from({ length: size }, (_, i) => ((i * 7919) % 1000) / 1000) };
  const labels = Int32Array.from({ length: batch }, (_, i) => (i * 97) % (model.numClasses ?? 10));
  const runtime = new Runtime({ threads: 1 });
  const forward = await runtime.session(model.onnx);
  const t1 = performance.now();
  const gradient = await GradientSession.create(runtime, model.onnx, { loss: { kind: 'cross-entropy' }, wrt: [input.name] });
  const buildMs = performance.now() - t1;
  const f: number[] = [], g: number[] = [];
  await forward.run({ [input.name]: x });
  await gradient.run({ inputs: { [input.name]: x }, labels });
  for (let i = 0; i < reps; i++) {
    let s = performance.now();
    await forward.run({ [input.name]: x });
    f.push(performance.now() - s);
    s = performance.now();
    await gradient.run({ inputs: { [input.name]: x }, labels });
    g.push(performance.now() - s);
  }
  await runtime.dispose();
  const result = { loadMs, buildMs, forwardMs: median(f), gradientMs: median(g), classes: model.numClasses, peakRssMb: process.resourceUsage().maxRSS / 1024 };
  console.log(`result ${JSON.stringify(result)}`);
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const arch of architectures) {
    const path = exportPath(arch);
    if (!path) {
      rows.push({ architecture: arch, note: 'skipped: /usr/bin/python3 with python3-torch and torchvision is needed to export it' });
      continue;
    }
    const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--measure', path], { encoding: 'utf8', maxBuffer: 2 ** 26 });
    const line = /result (\{.*\})/.exec(r.stdout ?? '');
    if (!line) {
      rows.push({ architecture: arch, note: `failed: ${(r.stderr || r.stdout || '').trim().split('\n').pop()}` });
      continue;
    }
    const m = JSON.parse(line[1]) as { loadMs: number; buildMs: number; forwardMs: number; gradientMs: number; classes: number; peakRssMb: number };
    rows.push({
      architecture: arch,
      classes: m.classes,
      'load ms': m.loadMs,
      'gradient build ms': m.buildMs,
      'forward ms/image': m.forwardMs / batch,
      'gradient ms/image': m.gradientMs / batch,
      'gradient/forward': `${(m.gradientMs / m.forwardMs).toFixed(2)}×`,
      'peak RSS MB': Math.round(m.peakRssMb),
    });
  }
  return rows;
}

if (require.main === module && process.argv[2] === '--measure') {
  measure(process.argv[3]).catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
