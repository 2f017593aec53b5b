import type { OptionSpecs } from '../method-options';
import type { ReversedTrigger } from '../analyses/reversal/trigger';
import type { AnalysisContext } from '../analyses/types';
import type { LoadedModel } from '../formats/types';
import type { OnnxModel } from '../graph/model';
import type { ScanResult } from '../scan';
import type { FixMeasurement } from './measure';
import type { FixOutcome } from './outcome';

export interface PrunedNeuron {
  layer: string;
  channel: number;
  score?: number;
}

export interface FixContext extends AnalysisContext {
  /** 'fixed': the paper's threshold; 'adaptive': prune by rank until the reversed trigger stops working. */
  mode: 'fixed' | 'adaptive';
  /**
   * The reversed triggers of every kind (the scan's, or the detectors' run for this fix). A fix
   * uses those it can stamp and names the others; it never fits on the held-out images, which
   * are not in `data` (the fit part).
   */
  triggers: ReversedTrigger[];
  /** Where the triggers came from, in words. */
  triggerSource: string;
  /** Attack success to get to (fraction) and clean accuracy a fix may spend (fraction). */
  goal: number;
  budget: number;
}

/** What one fix method produces. */
export interface FixRun {
  method: string;
  /** The fixed model; keeps the input's input and output names. Absent when the fix wrote nothing. */
  model?: OnnxModel;
  /** Why the fix produced no model (e.g. a trigger-based fix with no trigger), when it did not. */
  nothing?: string;
  pruned: PrunedNeuron[];
  /** What was done and why (threshold chosen, budget used, deviations). */
  notes: string[];
  details?: Record<string, unknown>;
}

/** A candidate `auto` tried, in the order it tried them. */
export interface FixTrial {
  method: string;
  outcome: FixOutcome;
  reason: string;
  /** Estimated attack success after (null when nothing could be measured), and clean accuracy after. */
  estimated: number | null;
  accuracy: number | null;
  seconds: number;
  chosen: boolean;
}

/** What applyFix returns: the fix, its own measurement and the outcome it states. */
export interface FixResult extends FixRun {
  outcome: FixOutcome;
  /** One line: "<method>: <outcome> — <why, with the numbers>". */
  headline: string;
  measurement?: FixMeasurement;
  /** The scan of the fixed model that confirmed (or overturned) the measurement, when one ran. */
  rescan?: ScanResult;
  /** For `auto`: every candidate it tried. */
  tried?: FixTrial[];
}

export interface Fix {
  id: string;
  title: string;
  /** The options it reads besides its analysis's (`--option <id>.key=value`): type, default, one line each. */
  options?: OptionSpecs;
  needs: 'none' | 'clean' | 'labelled' | 'mixed';
  /** Relative cost, for `auto`'s cheapest-first order (seconds on the fixture CNN, roughly). */
  cost: number;
  /** Whether it needs a reversed trigger to do anything (BNA, unlearning). */
  needsTrigger?: boolean;
  /** Why `auto` leaves it out (e.g. too slow to try on every model), if it does. */
  notInAuto?: string;
  /** Why the fix cannot apply to this model, if it cannot. */
  notApplicable?(model: LoadedModel): string | undefined;
  run(ctx: FixContext): Promise<FixRun>;
}
