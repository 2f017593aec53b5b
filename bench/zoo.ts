/**
 * The development zoo (tools/zoo/generate.py writes it to .cache/zoo, or BACKDOOR_LENS_ZOO):
 * which models exist, their truth, and the paths of their files and data sets.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './models';

export type ZooMode = 'all-to-one' | 'all-to-all' | 'clean';

/** truth.json as tools/zoo/generate.py writes it. */
export interface ZooTruth {
  name: string;
  architecture: 'cnn4' | 'resnet18';
  input: { kind: 'gray28' | 'rgb32'; dims: number[] };
  backdoored: boolean;
  mode: ZooMode;
  /** all-to-one: [target]; all-to-all: every class; clean: []. */
  targets: number[];
  attack: string;
  trigger: Record<string, unknown> | null;
  labelMode: 'poison-label' | 'clean-label' | null;
  poisonRate: number;
  accuracy: number;
  asr: number | null;
  meetsTargets: boolean;
}

export interface ZooModel {
  truth: ZooTruth;
  dir: string;
  /** BatchNorm kept / folded ONNX exports, and the state_dict. */
  onnx: string;
  folded: string;
  stateDict: string;
  /** The defender's clean set (1 000 images, 100 per class) and the held-out test set (2 000). */
  clean: string;
  test: string;
  /** test.npz with the true trigger: x, y (true class), goal (the attack's label); absent for clean models. */
  triggered?: string;
}

export const zooDir = process.env.BACKDOOR_LENS_ZOO ?? join(root, '.cache/zoo');

/** Every trained zoo model (those with a truth.json), in name order; [] when the zoo was not generated. */
export function zooModels(filter?: (t: ZooTruth) => boolean): ZooModel[] {
  if (!existsSync(zooDir)) return [];
  return readdirSync(zooDir)
    .filter((name) => existsSync(join(zooDir, name, 'truth.json')))
    .sort()
    .map((name) => {
      const dir = join(zooDir, name);
      const truth = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8')) as ZooTruth;
      const data = join(zooDir, 'data', truth.input.kind);
      const triggered = join(dir, 'triggered.npz');
      return {
        truth,
        dir,
        onnx: join(dir, 'model.onnx'),
        folded: join(dir, 'model.folded.onnx'),
        stateDict: join(dir, 'model.pt'),
        clean: join(data, 'clean.npz'),
        test: join(data, 'test.npz'),
        ...(existsSync(triggered) ? { triggered } : {}),
      };
    })
    .filter((m) => !filter || filter(m.truth));
}

/** The message a bench prints when the zoo is missing. */
export const zooMissing = `no development zoo under ${zooDir}: generate it with /usr/bin/python3 tools/zoo/generate.py (about three hours on 2 cores)`;
