/**
 * The loss on the logits and its gradient with respect to them, written out analytically:
 * cross-entropy gives (softmax − onehot)·c, the margin z_t − max_{j≠t} z_j gives
 * (onehot(t) − onehot(argmax_{j≠t}))·c, and the away loss −mean_{j≠y} log p_j gives
 * (softmax(z) − u)·c with u uniform over the classes j ≠ y, the soft cross-entropy −Σ_j q_j log p_j
 * against fed distributions q gives (softmax(z) − q)·c; c = 1/N for the mean or w_i when weighted.
 * The runner-up is the first maximal logit, as torch.max picks it.
 */
import { BackdoorLensError } from '../errors';
import type { Emitter } from './emitter';
import type { LossSpec } from './types';

export interface LossNodes {
  /** Scalar loss. */
  loss: string;
  /** dL/dlogits [N, K]. */
  seed: string;
}

const lowestFloat = -3.4028234663852886e38;

export function emitLoss(e: Emitter, logits: string, loss: LossSpec, labels: string, weights: string | undefined, softLabels?: string): LossNodes {
  const dims = e.shapes.get(logits);
  const classes = dims?.[1];
  if (!dims || dims.length !== 2 || typeof classes !== 'number') {
    throw new BackdoorLensError('unsupported-model', `${e.model.source}: the logits '${logits}' must have shape [N, K] with a static class count, got [${dims?.join(', ') ?? 'unknown'}]`, { file: e.model.source });
  }
  const column = e.op('Unsqueeze', [labels, e.ints([1])], {}, 'labels_column');
  const classIds = e.builder.initializer('class_ids', { dtype: 'int64', dims: [1, classes], data: BigInt64Array.from({ length: classes }, (_, i) => BigInt(i)) });
  const isLabel = e.op('Equal', [column, classIds], {}, 'is_label');
  const onehot = e.op('Cast', [isLabel], { to: 1 }, 'onehot');
  // Per-sample coefficient: w_i as a column, or 1/N.
  const coefficient = weights
    ? e.op('Unsqueeze', [weights, e.ints([1])], {}, 'weights_column')
    : e.op('Reciprocal', [e.op('Cast', [e.shapeOf(labels)], { to: 1 })], {}, 'inverse_batch');
  let perSample: string, direction: string;
  if (loss.kind === 'cross-entropy' || loss.kind === 'target-cross-entropy') {
    const logProbs = e.op('LogSoftmax', [logits], { axis: 1 }, 'log_probs');
    perSample = e.op('Neg', [e.op('GatherElements', [logProbs, column], { axis: 1 })], {}, 'nll');
    direction = e.op('Sub', [e.op('Exp', [logProbs]), onehot]);
  } else if (loss.kind === 'margin') {
    const target = e.op('GatherElements', [logits, column], { axis: 1 }, 'target_logit');
    const others = e.op('Where', [isLabel, e.scalar(lowestFloat), logits], {}, 'other_logits');
    const runnerUp = e.op('ReduceMax', [others, e.ints([1])], { keepdims: 1 }, 'runner_up');
    const runnerUpClass = e.op('ArgMax', [others], { axis: 1, keepdims: 1, select_last_index: 0 }, 'runner_up_class');
    perSample = e.op('Sub', [target, runnerUp], {}, 'margin');
    direction = e.op('Sub', [onehot, e.op('Cast', [e.op('Equal', [runnerUpClass, classIds])], { to: 1 })]);
  } else if (loss.kind === 'away-cross-entropy') {
    const logProbs = e.op('LogSoftmax', [logits], { axis: 1 }, 'log_probs');
    const uniform = e.op('Div', [e.op('Sub', [e.scalar(1), onehot]), e.scalar(classes - 1)], {}, 'uniform_others');
    perSample = e.op('Neg', [e.op('ReduceSum', [e.mul(logProbs, uniform), e.ints([1])], { keepdims: 1 })], {}, 'away_nll');
    direction = e.op('Sub', [e.op('Exp', [logProbs]), uniform]);
  } else if (loss.kind === 'soft-cross-entropy') {
    if (!softLabels) throw new BackdoorLensError('usage', 'the soft-cross-entropy loss needs a soft-labels input');
    const logProbs = e.op('LogSoftmax', [logits], { axis: 1 }, 'log_probs');
    perSample = e.op('Neg', [e.op('ReduceSum', [e.mul(logProbs, softLabels), e.ints([1])], { keepdims: 1 })], {}, 'soft_nll');
    // Σ_j q_ij = 1 per row, so the gradient is p − q.
    direction = e.op('Sub', [e.op('Exp', [logProbs]), softLabels]);
  } else {
    throw new BackdoorLensError('usage', `unknown loss kind '${(loss as { kind: string }).kind}'`);
  }
  const total = weights
    ? e.op('ReduceSum', [e.mul(e.op('Reshape', [perSample, e.ints([-1])]), weights)], { keepdims: 0 }, 'loss')
    : e.op('ReduceMean', [perSample], { keepdims: 0 }, 'loss');
  return { loss: total, seed: e.mul(direction, coefficient) };
}
