/**
 * The many-class plan (issue 16, point 2): the DEFAULT scan of torchvision's ResNet-50 (1 000
 * classes, 3×224×224, random weights, BN folded, opset 17) with 1 image per class, through the
 * built CLI as a user runs it. Target: a verdict within 15 minutes on 2 cores, peak RSS ≤ 4 GB.
 * The scan gets that target as its time limit (MANY_CLASSES_TIME_LIMIT seconds, default 900), so
 * a miss shows as the stage it stopped at, with the ETA the progress had reached. Peak RSS is the
 * whole process tree's (CLI and job), sampled every 100 ms.
 *
 * The export is made into .cache/torchvision by tools/fixtures/torchvision_exports.py with Debian's
 * python3-torch on first run; the images (uint8, seeded noise, labels 0…999) into .cache/many-classes.
 * `npm run build` first.
 *   nice npm run bench -- many-classes
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { residentBytes } from '../../engine';
import { root } from '../models';
import { npyBytes, processTree } from '../../test/helpers';
import type { Row } from '../run';

export const name = 'many classes: default scan of a 1 000-class 224×224 ResNet-50, 1 image per class (built CLI)';

const K = 1000;

function resnet50(): string | undefined {
  const path = join(root, '.cache/torchvision/resnet50.opset17.onnx');
  if (existsSync(path)) return path;
  const r = spawnSync('/usr/bin/python3', [join(root, 'tools/fixtures/torchvision_exports.py'), '--opset', '17', 'resnet50'], { stdio: ['ignore', 'ignore', 'inherit'] });
  return r.status === 0 && existsSync(path) ? path : undefined;
}

/** 1 000 uint8 images of 3×224×224 (150 MB), one per class. */
function images(): { x: string; y: string } {
  const dir = join(root, '.cache/many-classes');
  const x = join(dir, 'x.npy'), y = join(dir, 'y.npy');
  if (existsSync(x) && existsSync(y)) return { x, y };
  mkdirSync(dir, { recursive: true });
  const per = 3 * 224 * 224;
  const pixels = new Uint8Array(K * per);
  let s = 12345;
  for (let i = 0; i < pixels.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    pixels[i] = s >>> 24;
  }
  writeFileSync(x, npyBytes('|u1', [K, 3, 224, 224], pixels));
  const labels = new BigInt64Array(K).map((_, i) => BigInt(i));
  writeFileSync(y, npyBytes('<i8', [K], new Uint8Array(labels.buffer)));
  return { x, y };
}

function measure(args: string[]): Promise<{ exit: number; wallS: number; peakMiB: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [join(root, 'bin', 'backdoor-lens.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let peak = 0;
    const timer = setInterval(() => {
      peak = Math.max(peak, processTree(child.pid!).reduce((sum, p) => sum + (residentBytes(p) ?? 0), 0));
    }, 100);
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ exit: code ?? -1, wallS: (Date.now() - t0) / 1000, peakMiB: Math.round(peak / 2 ** 20), stdout, stderr: stderr.trim() });
    });
  });
}

interface Report {
  verdict: string;
  methods: { method: string; status: string; ms: number; notes?: string[]; gradientEvaluations?: number }[];
}

export async function run(): Promise<Row[]> {
  const model = resnet50();
  if (!model) return [{ note: 'skipped: /usr/bin/python3 with python3-torch and torchvision is needed to export ResNet-50' }];
  const { x, y } = images();
  const limit = process.env.MANY_CLASSES_TIME_LIMIT ?? '900';
  const r = await measure(['scan', model, '--data', x, '--labels', y, '--time-limit', limit, '--json']);
  let report: Report | undefined;
  try {
    report = JSON.parse(r.stdout) as Report;
  } catch {
    // no report: the row says why from stderr
  }
  const pairs = report?.methods.find((m) => m.method === 'pairs');
  const kept = pairs?.notes?.[0]?.match(/kept (\d+) targets .* and (\d+) shifts/);
  return [
    {
      model: 'resnet50 (torchvision, random weights), K = 1000, 1 image/class',
      'time limit s': Number(limit),
      'wall s': r.wallS,
      'peak RSS MiB': r.peakMiB,
      verdict: report?.verdict ?? `none (exit ${r.exit})`,
      'classes kept': kept ? `${kept[1]} targets, ${kept[2]} shifts of ${K}` : '—',
      methods: report ? report.methods.map((m) => `${m.method} ${m.status} ${Math.round(m.ms / 1000)} s`).join('; ') : '—',
      'pairs image gradients': pairs?.gradientEvaluations ?? '—',
      stopped: r.stderr.split('\n').at(-1)?.slice(0, 240) ?? '',
    },
  ];
}
