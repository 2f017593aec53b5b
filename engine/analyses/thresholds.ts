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
  value: 1e-11,
  source: 'calibrated on 7 clean zoo controls (smallest clean p 1.2e-10: rn-clean-b retrained, BN kept, seed 2) ÷ 3.4, rounded down; the paper\'s 0.05 flags most of them; --option mmbd.threshold',
};
