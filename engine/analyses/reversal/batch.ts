/**
 * Advances many reversal tasks by one step with as few network calls as possible: every task's
 * triggered mini-batch goes into one batch with per-sample target labels and weights 1/B (so
 * the weighted loss Σ w_i·CE_i is each task's mean CE, side by side), and ∂L/∂x per sample is
 * chained back to each task's trigger parameters in JS.
 */
import { sampleSize, type Dataset } from '../../data/types';
import type { ReversalTask } from './task';

/**
 * ∂(Σ_i w_i·ℓ_i)/∂x_i and the logits, for one batch: ℓ_i = CE(f(x_i), labels_i) toward a target
 * ('toward', the default), or −log(1 − p_{labels_i}) away from the true class ('away').
 */
export type BatchGradient = (batch: { x: Float32Array; dims: number[]; labels: Int32Array; weights: Float32Array; goal?: 'toward' | 'away' }) => Promise<{ dx: Float32Array; logits: Float32Array }>;

export interface BatchStats {
  /** Per-sample gradient evaluations (images through forward and backward). */
  sampleGradients: number;
  calls: number;
}

/** Groups tasks of one goal into calls of at most `maxBatch` samples (a task is never split). */
function chunks(tasks: readonly ReversalTask[], maxBatch: number): ReversalTask[][] {
  const away = tasks.filter((t) => t.away);
  if (away.length > 0 && away.length < tasks.length) return [...chunks(tasks.filter((t) => !t.away), maxBatch), ...chunks(away, maxBatch)];
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
        labels[row] = task.away ? data.labels![i] : task.targetOf(i);
        weights[row] = 1 / batches[k].length;
        row++;
      }
    });
    const { dx, logits } = await gradient({ x, dims: [n, ...data.dims.slice(1)], labels, weights, goal: group[0].away ? 'away' : 'toward' });
    const K = logits.length / n;
    row = 0;
    group.forEach((task, k) => {
      const grad = new Float64Array(task.objective.params.length);
      let hits = 0;
      for (const i of batches[k]) {
        task.objective.backward(data.x, i * per, dx, row * per, grad);
        let best = 0;
        for (let j = 1; j < K; j++) if (logits[row * K + j] > logits[row * K + best]) best = j;
        if (task.away ? best !== labels[row] : best === task.targetOf(i)) hits++;
        row++;
      }
      task.update(grad, hits / batches[k].length);
    });
    stats.sampleGradients += n;
    stats.calls++;
  }
  return stats;
}
