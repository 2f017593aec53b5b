/**
 * The detectors' decision thresholds, all read from here. Each is derived from the statistics of
 * clean models only — the development zoo's clean controls, both exports, several seeds — never
 * from backdoored models or the repository's fixtures: threshold = the highest clean value × the
 * margin. `npm run bench -- calibrate` measures the clean controls and rewrites calibration.json;
 * docs/detection.md explains the numbers.
 */
import record from './calibration.json';

export type ScreenKey = 'targets:patch' | 'targets:perturbation' | 'targets:warp' | 'shifts:patch' | 'shifts:perturbation' | 'shifts:warp';

export interface CleanValue {
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
export function screenThreshold(key: ScreenKey): CalibratedThreshold {
  const clean = calibration.screens[key];
  if (!clean || clean.length === 0) throw new Error(`calibration.json has no clean values for ${key}`);
  const top = clean.reduce((a, b) => (b.value > a.value ? b : a));
  const models = new Set(clean.map((c) => c.model)).size;
  return {
    value: Math.round(top.value * calibration.margin * 100) / 100,
    source: `calibrated: highest of ${clean.length} clean-control scans of ${models} models (${top.value.toFixed(2)}, ${top.model}) × ${calibration.margin}`,
  };
}
