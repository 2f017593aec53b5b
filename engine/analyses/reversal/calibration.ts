/**
 * The detectors' decision thresholds, all read from here. Each is derived from the statistics of
 * clean models only — the development zoo's clean controls, both exports, several seeds — never
 * from backdoored models or the repository's fixtures: threshold = the highest clean value × the
 * margin. `npm run bench -- calibrate` measures the clean controls and rewrites calibration.json;
 * docs/detection.md explains the numbers.
 */
import type { OnnxModel } from '../../graph/model';
import record from './calibration.json';

export type ScreenKey = 'targets:patch' | 'targets:perturbation' | 'targets:warp' | 'shifts:patch' | 'shifts:perturbation' | 'shifts:warp';

/**
 * Clean statistics depend on the architecture: the residual clean controls reach patch ratios of
 * 5.1 (a natural 8-pixel trigger to 'bag' that moves every class), the plain CNNs 3.0. One pooled
 * threshold would hold every plain network to the residual networks' tail, so thresholds are per
 * family, and a family with no clean values falls back to all of them.
 */
export type NetworkFamily = 'plain' | 'residual';

/** Residual when some Add joins two computed tensors (a skip connection), plain otherwise. */
export function networkFamily(model: OnnxModel): NetworkFamily {
  const constant = new Set(model.initializerNames());
  for (const n of model.graph.node) if (n.op_type === 'Constant') for (const o of n.output ?? []) constant.add(o);
  const joins = model.graph.node.some((n) => n.op_type === 'Add' && (n.input ?? []).filter((i) => i && !constant.has(i)).length >= 2);
  return joins ? 'residual' : 'plain';
}

export interface CleanValue {
  family: NetworkFamily;
  model: string;
  export: 'onnx' | 'folded';
  seed: number;
  value: number;
}

export interface CalibrationRecord {
  /** Multiplies the highest clean value. */
  margin: number;
  /** How and when the record was made. */
  made: string;
  screens: Record<string, CleanValue[]>;
}

export interface CalibratedThreshold {
  value: number;
  /** One line for the report: where the threshold comes from. */
  source: string;
}

export const calibration = record as CalibrationRecord;

/** The threshold of a screen of the trigger-reversal detector (pairs.ts). */
export function screenThreshold(key: ScreenKey, family?: NetworkFamily): CalibratedThreshold {
  const all = calibration.screens[key];
  if (!all || all.length === 0) throw new Error(`calibration.json has no clean values for ${key}`);
  const own = all.filter((c) => c.family === family);
  const clean = own.length ? own : all;
  const top = clean.reduce((a, b) => (b.value > a.value ? b : a));
  const models = new Set(clean.map((c) => c.model)).size;
  return {
    value: Math.round(top.value * calibration.margin * 100) / 100,
    source: `calibrated: highest of ${clean.length} clean-control scans of ${models} ${own.length ? `${family} ` : ''}models (${top.value.toFixed(2)}, ${top.model}) × ${calibration.margin}`,
  };
}
