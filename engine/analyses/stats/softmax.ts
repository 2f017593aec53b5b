/** Softmax over each row of row-major logits [N·K] (max-shifted, so large logits do not overflow), in float64. */
export function softmaxRows(logits: ArrayLike<number>, K: number): Float64Array {
  const p = new Float64Array(logits.length);
  for (let r = 0; r < logits.length / K; r++) {
    let max = -Infinity;
    for (let j = 0; j < K; j++) max = Math.max(max, logits[r * K + j]);
    let sum = 0;
    for (let j = 0; j < K; j++) sum += p[r * K + j] = Math.exp(logits[r * K + j] - max);
    for (let j = 0; j < K; j++) p[r * K + j] /= sum;
  }
  return p;
}
