/**
 * The shape every analysis has: it takes a model and data and returns typed findings.
 * Adding one is one file in methods/ and one line in registry.ts (docs/adding-a-method.md).
 */
import type { Dataset, PreprocessSpec } from '../data/types';
import type { LoadedModel } from '../formats/types';
import type { Runtime } from '../runtime/session';
import type { OptionSpecs } from '../method-options';
import type { AttackType, Finding, LabelResult, NeuronScore, PairResult, VerdictEvidence } from '../report/types';

/** What data a method needs: none (data-free), clean images (labels optional), clean labelled images, or a possibly poisoned set. */
export type DataNeed = 'none' | 'clean' | 'labelled' | 'mixed';

export type DataKind = 'clean' | 'mixed';

export interface AnalysisContext {
  model: LoadedModel;
  runtime: Runtime;
  data?: Dataset;
  /** The preprocessing the user gave (flags or backdoor-lens.json); data-free methods read the input range from it (absent: pixels in [0, 1]). */
  preprocess?: PreprocessSpec;
  /** Whether `data` is known clean or may contain poisoned samples. */
  dataKind: DataKind;
  numClasses: number | null;
  /** Threshold multiplier u of mean ± u·std. */
  thresholdMultiplier: number;
  seed: number;
  batchSize: number;
  /** This method's options from the command line or config (`--option clp.thresholdMultiplier=2`, "methodOptions"). */
  options: Record<string, unknown>;
  signal: AbortSignal;
  /** Reports progress within this method: fraction in [0,1] and a stage text like "pair 37/90". */
  progress(fraction: number, stage: string): void;
  /** Outputs of the analyses that ran before this one in the same scan. */
  previous: ReadonlyMap<string, AnalysisOutput>;
}

export interface ArtifactImage {
  kind: 'mask' | 'pattern' | 'stamped' | 'trigger' | string;
  /** File name without folder, e.g. 'pair-3-0-mask.png'. */
  name: string;
  png: Uint8Array;
  label?: number;
  pair?: { source: number; target: number };
}

export interface AnalysisOutput {
  findings?: Finding[];
  neurons?: NeuronScore[];
  pairs?: PairResult[];
  labels?: LabelResult[];
  targets?: number[];
  attackType?: AttackType | null;
  /** Detectors only: whether they found a backdoor. Neuron flags never set this. */
  backdoored?: boolean;
  /** Detectors only: the tests that decided `backdoored`, with their statistics and thresholds. */
  evidence?: VerdictEvidence[];
  /** Detectors only: the decision threshold on the method's main statistic (the report's methods[].threshold). */
  threshold?: number;
  artifacts?: ArtifactImage[];
  gradientEvaluations?: number;
  direction?: 'above' | 'below';
  notes?: string[];
  /** In-memory results later steps can use (e.g. reversed triggers for adaptive pruning); never serialised. */
  state?: unknown;
}

export interface Analysis {
  id: string;
  title: string;
  needs: DataNeed;
  /** Whether its results decide the verdict (trigger reversal does; neuron scores never do). */
  detector: boolean;
  /**
   * Whether a scan without --methods runs it; 'without-data' for a data-free detector that
   * decides only when the scan has no labelled data (with data, trigger reversal decides).
   */
  runsByDefault: boolean | 'without-data';
  /** The options it reads (`--option <id>.key=value`, "methodOptions"): type, default, one line each. */
  options: OptionSpecs;
  /** Why the method cannot run on this model, if it cannot (e.g. BN folded). */
  notApplicable?(model: LoadedModel): string | undefined;
  run(ctx: AnalysisContext): Promise<AnalysisOutput>;
}
