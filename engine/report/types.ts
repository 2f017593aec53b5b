/**
 * Report format v1: what a scan says about a model. schemas/report.schema.json is the JSON
 * Schema of the same shape; a test keeps the two in step.
 */
import type { ResolvedPreprocess } from '../data/types';

export const REPORT_VERSION = 1;

export type Severity = 'error' | 'warning' | 'information';
export type Verdict = 'backdoored' | 'clean' | 'inconclusive';
export type ModelFormat = 'onnx' | 'pytorch' | 'safetensors' | 'backdoorbench';
export type AttackType = 'all-to-one' | 'all-to-all' | 'other';

export interface FindingLocation {
  /** Layer name as the outline shows it, e.g. 'layer1.0.bn1'. */
  layer?: string;
  channel?: number;
  channels?: number[];
  pair?: { source: number; target: number };
  label?: number;
  /** A tensor or key inside the file (pickle global, initializer name). */
  symbol?: string;
}

export interface Finding {
  severity: Severity;
  /** Stable code, e.g. 'BL001'; documented in docs/findings/<code>.md. */
  code: string;
  message: string;
  /** The analysis or reader that raised it ('clp', 'pairs', 'pickle', …). */
  method: string;
  location?: FindingLocation;
}

export interface PairResult {
  source: number;
  target: number;
  /** The reversal statistic (larger = easier to flip: 1/|m|₁ or 1/‖v‖₂). */
  statistic: number;
  anomalyIndex: number;
  flagged: boolean;
  method?: string;
  /**
   * Why a flagged pair is flagged: 'outlier' (its own anomaly index is above the threshold) or
   * 'transfer' (the trigger reversed for the outlier pairs also sends this class to the target).
   */
  via?: 'outlier' | 'transfer';
  /** For 'transfer': the share of the source class's clean images the stamped trigger sent to the target. */
  transferShare?: number;
}

export interface LabelResult {
  label: number;
  /** Neural Cleanse: |m|₁ of the smallest trigger found for this target label. */
  l1?: number;
  /** Other per-class detectors: the method's statistic (MM-BD: the maximum logit margin reached). */
  statistic?: number;
  anomalyIndex: number;
  flagged: boolean;
  method?: string;
}

export interface NeuronScore {
  method: string;
  layer: string;
  channel: number;
  score: number;
  /** The layer's threshold this score was compared with. */
  threshold: number;
  flagged: boolean;
}

export type MethodStatus = 'ran' | 'skipped' | 'failed' | 'stopped';

/**
 * One detector test and what it decided: the statistic it measured, the threshold it compared it
 * with and where that threshold comes from. The verdict is backdoored when any entry is flagged.
 */
export interface VerdictEvidence {
  /** Detector and variant, e.g. 'pairs:patch', 'pairs:perturbation', 'mmbd'. */
  method: string;
  /** What was measured, e.g. 'anomaly index of 1/|m|₁ over the class pairs'. */
  statistic: string;
  /** The most extreme value the test saw (the one compared with the threshold). */
  value: number;
  threshold: number;
  /** 'above': flagged when value > threshold; 'below': flagged when value < threshold (p-values). */
  direction: 'above' | 'below';
  /** Where the threshold comes from, e.g. 'calibrated on 6 clean zoo controls (highest 3.9) + margin'. */
  thresholdSource: string;
  flagged: boolean;
  /** Target classes this test points at (empty when not flagged). */
  targets: number[];
  attackType: AttackType | null;
  /** One line a person can read, e.g. "pairs:patch: 7 → 0 anomaly index 14.2 > 4.5". */
  summary: string;
}

export interface MethodRun {
  method: string;
  status: MethodStatus;
  /** Why it was skipped or failed. */
  reason?: string;
  ms: number;
  /** Whether neuron flags point above or below the threshold. */
  direction?: 'above' | 'below';
  /** The threshold multiplier u of mean ± u·std the neuron flags were judged by. */
  thresholdMultiplier?: number;
  /** Gradient evaluations, for optimisation-based methods. */
  gradientEvaluations?: number;
  /** A detector's decision threshold (on its own statistic, see the report's evidence). */
  threshold?: number;
  /** Deviations from the reference algorithm, and other notes a reader should know. */
  notes?: string[];
}

export interface Artifact {
  /** e.g. 'trigger', 'mask', 'pattern', 'stamped' */
  kind: string;
  /** Path of the written file, relative to the report file when one was written. */
  path: string;
  label?: number;
  pair?: { source: number; target: number };
}

export interface ModelInfoSummary {
  path: string;
  sha256: string;
  format: ModelFormat;
  /** The preprocessing used to feed the data, or the model's expected input when no data was given. */
  input: { name: string; dims: (number | string)[]; preprocess?: ResolvedPreprocess };
  numClasses: number | null;
  bn: 'kept' | 'folded' | 'absent' | 'unknown';
  architecture?: string;
  /** How the graph was made from weights: the template match, where the input size came from. */
  notes?: string[];
}

/** One measured quantity of a fix: what it was before the fix (recorded by the fix) and on this model now. */
export interface RepairRow {
  /** e.g. 'clean accuracy', 'reversed patch trigger 3 → 0', 'target 0 (all its triggers)'. */
  what: string;
  target?: number;
  /** Recorded by the fix on its held-out images, on the unfixed model. */
  before: number | null;
  /** Recorded by the fix on the fixed model. */
  fixed: number | null;
  /** Measured by this scan on this model. */
  now: number | null;
  /** Images measured now. */
  n: number;
}

/** Set when the scanned model was written by a fix: what the fix measured, measured again. */
export interface RepairSection {
  method: string;
  /** The outcome the fix stated. */
  outcome: 'removed' | 'reduced' | 'failed';
  /** The fix's goal (attack success) and accuracy budget, fractions. */
  goal: number;
  budget: number;
  /** Where "before" and "fixed" were measured, and where "now" was. */
  recordedOn: string;
  measuredOn: string;
  rows: RepairRow[];
  /** For a BNA model: the corrected targets, and what the scan judged. */
  bna?: { targets: number[]; judged: string };
}

export interface ScanReport {
  reportVersion: typeof REPORT_VERSION;
  tool: { name: 'backdoor-lens'; version: string };
  createdAt: string;
  model: ModelInfoSummary;
  data: { path: string; n: number; labelled: boolean; kind: 'clean' | 'mixed' } | null;
  verdict: Verdict;
  /** The detector tests behind the verdict, flagged ones first. */
  evidence: VerdictEvidence[];
  attackType: AttackType | null;
  /** Detected target classes. */
  targets: number[];
  pairs: PairResult[];
  labels: LabelResult[];
  neurons: NeuronScore[];
  findings: Finding[];
  methods: MethodRun[];
  /** Milliseconds per method, and 'total'. */
  timings: Record<string, number>;
  artifacts: Artifact[];
  seed: number;
  /** Present when the model was written by a fix (its record) or is a BNA model. */
  repair?: RepairSection;
}
