/** The public shapes of the gradient-graph builder (other modules code against these names). */
import type { OnnxModel } from '../graph/model';
import type { Tensor } from '../tensor';

export type LossSpec =
  /** ℓ_i = CE(logits_i, labels_i). */
  | { kind: 'cross-entropy' }
  /** Same math; the labels input holds each sample's target class. */
  | { kind: 'target-cross-entropy' }
  /** ℓ_i = z[t_i] − max_{j≠t_i} z[j]. */
  | { kind: 'margin' }
  /**
   * ℓ_i = −(1/(K−1))·Σ_{j≠y_i} log p[j]: cross-entropy toward the uniform distribution over the
   * other classes, so every class a sample could leave y_i for pulls equally (untargeted attacks).
   */
  | { kind: 'away-cross-entropy' }
  /**
   * ℓ_i = −Σ_j q_ij log p_ij against fed soft labels q [N, K] (each row a distribution), e.g. a
   * teacher's probabilities for distillation; the labels input is fed but unused.
   */
  | { kind: 'soft-cross-entropy' };

export interface GradientSpec {
  loss: LossSpec;
  /** Adds a per-sample weights input w [N]: L = Σ_i w_i·ℓ_i. Without it L = mean_i ℓ_i. */
  weighted?: boolean;
  /** Graph inputs or initializer names to differentiate w.r.t.; initializers become inputs fed with their stored values unless overridden. */
  wrt: string[];
  /** Forward tensors to output as well (e.g. the logits, intermediates). */
  fetch?: string[];
  /** Which forward output holds the logits [N, K] (default: the first graph output). */
  logits?: string;
}

export interface GradientGraph {
  /** The combined forward+backward graph. */
  model: OnnxModel;
  /** int64 [N]. */
  labelsInput: string;
  /** float [N] when weighted. */
  weightsInput?: string;
  /** float [N, K] for the soft-cross-entropy loss. */
  softLabelsInput?: string;
  /** Scalar. */
  lossOutput: string;
  /** wrt name -> output name. */
  gradOutputs: Map<string, string>;
  /** Fetched tensor -> output name. */
  fetchOutputs: Map<string, string>;
  /** Initializers that became inputs, with their stored values (fed unless overridden). */
  defaults: Map<string, Tensor>;
}

/** A vector-Jacobian product graph: any forward tensors, with their upstream gradients fed as inputs. */
export interface VjpSpec {
  /** Forward tensors whose upstream gradients are fed (default: every graph output). */
  outputs?: string[];
  wrt: string[];
  fetch?: string[];
}

export interface VjpGraph {
  model: OnnxModel;
  /** Forward tensor -> the input that receives its upstream gradient (same shape). */
  seedInputs: Map<string, string>;
  gradOutputs: Map<string, string>;
  fetchOutputs: Map<string, string>;
  defaults: Map<string, Tensor>;
}
