/**
 * Loading a full-size ResNet-18 state_dict (torchvision layout, 11.2 M parameters, ~45 MB): the
 * safe pickle reader, the template build, and the same weights as safetensors. Target: under 1 s.
 * The checkpoint is generated into .cache/bench/ with Debian's python3-torch on first run.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadModel } from '../../engine';
import { encodeSafetensors, readWeights } from '../../engine/formats';
import { readTorchObject } from '../../engine/formats/torch/checkpoint';
import type { Row } from '../../bench/run';
import { root } from '../../bench/models';

export const name = 'Loading a ResNet-18 state_dict (target < 1 s)';

const dir = join(root, '.cache/bench/resnet18');

/** Full-width weights of one templates.py case, made by tools/fixtures/templates.py if missing. */
export function fullWidthCheckpoint(file: string, only: string): string | undefined {
  const path = join(dir, file);
  if (existsSync(path)) return path;
  const r = spawnSync('/usr/bin/python3', [join(root, 'tools/fixtures/templates.py'), '--full-width', '--only', only, '--out', dir], { stdio: 'inherit' });
  return r.status === 0 && existsSync(path) ? path : undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function timeLoad(path: string, reps: number): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await loadModel(path);
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

export async function run(): Promise<Row[]> {
  const pt = fullWidthCheckpoint('resnet18-imagenet.pt', 'resnet18-imagenet');
  if (!pt) return [{ file: 'resnet18-imagenet.pt', note: 'skipped: /usr/bin/python3 with python3-torch and torchvision is needed to generate it' }];
  const st = join(dir, 'resnet18-imagenet.safetensors');
  if (!existsSync(st)) writeFileSync(st, encodeSafetensors(readWeights(pt, 'pytorch')));
  const rows: Row[] = [];
  for (const path of [pt, st]) {
    const bytes = readFileSync(path);
    const rss0 = process.memoryUsage().rss;
    const total = await timeLoad(path, 5);
    const m = await loadModel(path);
    const row: Row = { file: path.endsWith('.pt') ? 'resnet18 state_dict (.pt)' : 'resnet18 (.safetensors)', MB: bytes.length / 2 ** 20, parameters: m.onnx.parameterCount(), 'load ms (median of 5)': total, target: total < 1000 ? 'met (< 1 s)' : 'MISSED (≥ 1 s)' };
    if (path.endsWith('.pt')) {
      const t0 = performance.now();
      readTorchObject(bytes, { path, sha256: '', maxTensorElements: 2 ** 28 });
      row['of which pickle+tensors ms'] = performance.now() - t0;
    }
    row['rss growth MB'] = (process.memoryUsage().rss - rss0) / 2 ** 20;
    rows.push(row);
  }
  return rows;
}
