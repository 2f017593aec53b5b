/**
 * Advances many reversal tasks by one step with as few network calls as possible: every task's
 * triggered mini-batch goes into one batch with per-sample target labels and weights 1/B (so
 * the weighted loss Σ w_i·CE_i is each task's mean CE, side by side), and ∂L/∂x per sample is
 * chained back to each task's trigger parameters in JS.
 */
import { sampleSize, type Dataset } from '../data/types';
import type { ReversalTask } from './reversal-task';

/** ∂(Σ_i w_i·CE(f(x_i), y_i))/∂x_i and the logits, for one batch. */
export type BatchGradient = (batch: { x: Float32Array; dims: number[]; labels: Int32Array; weights: Float32Array }) => Promise<{ dx: Float32Array; logits: Float32Array }>;

export interface BatchStats {
  /** Per-sample gradient evaluations (images through forward and backward). */
  sampleGradients: number;
  calls: number;
}

/** Groups tasks into calls of at most `maxBatch` samples (a task is never split). */
function chunks(tasks: readonly ReversalTask[], maxBatch: number): ReversalTask[][] {
  const out: ReversalTask[][] = [];
  let current: ReversalTask[] = [], size = 0;
  for (const t of tasks) {
    const b = t.nextBatch().length;
    if (current.length && size + b > maxBatch) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += b;
  }
  if (current.length) out.push(current);
  return out;
}

export async function advanceTasks(tasks: readonly ReversalTask[], data: Dataset, gradient: BatchGradient, maxBatch: number, signal?: AbortSignal): Promise<BatchStats> {
  const per = sampleSize(data);
  const stats: BatchStats = { sampleGradients: 0, calls: 0 };
  for (const group of chunks(tasks.filter((t) => t.running), maxBatch)) {
    signal?.throwIfAborted();
    const batches = group.map((t) => t.nextBatch());
    const n = batches.reduce((s, b) => s + b.length, 0);
    const x = new Float32Array(n * per);
    const labels = new Int32Array(n), weights = new Float32Array(n);
    let row = 0;
    group.forEach((task, k) => {
      for (const i of batches[k]) {
        task.objective.compose(data.x, i * per, x, row * per);
        labels[row] = task.targetOf(i);
        weights[row] = 1 / batches[k].length;
        row++;
      }
    });
    const { dx, logits } = await gradient({ x, dims: [n, ...data.dims.slice(1)], labels, weights });
    const K = logits.length / n;
    row = 0;
    group.forEach((task, k) => {
      const grad = new Float64Array(task.objective.params.length);
      let hits = 0;
      for (const i of batches[k]) {
        task.objective.backward(data.x, i * per, dx, row * per, grad);
        let best = 0;
        for (let j = 1; j < K; j++) if (logits[row * K + j] > logits[row * K + best]) best = j;
        if (best === task.targetOf(i)) hits++;
        row++;
      }
      task.update(grad, hits / batches[k].length);
    });
    stats.sampleGradients += n;
    stats.calls++;
  }
  return stats;
}
