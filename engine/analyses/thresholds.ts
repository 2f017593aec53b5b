/**
 * Detector decision thresholds that were calibrated rather than taken from a paper's default: the
 * value, and where it comes from as the report states it (evidence[].thresholdSource). Calibration
 * uses clean controls only, never backdoored models (docs/findings/ of each detector has the numbers).
 */

export interface CalibratedThreshold {
  value: number;
  source: string;
}

/** MM-BD: flag when the order-statistic p-value of the largest maximum margin is below this. */
export const MMBD_THRESHOLD: CalibratedThreshold = {
  value: 0.02,
  source: 'calibrated on 3 clean controls × 3 seeds (smallest p 0.048; the paper\'s 0.05 would flag it) ÷ 2.4, rounded down; --option mmbd.threshold',
};
