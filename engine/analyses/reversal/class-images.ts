/** The clean images of each class the reversal methods draw from, and the class count. */
import { indicesOfClass, type Dataset } from '../../data/types';
import { predict } from '../../evaluate';
import { SeededRandom } from '../stats/random';
import type { AnalysisContext } from '../types';

/** The number of classes: from the model when it says, else from one forward pass. */
export async function classCount(ctx: AnalysisContext, data: Dataset): Promise<number> {
  if (ctx.numClasses) return ctx.numClasses;
  const one = { ...data, n: 1, x: data.x.subarray(0, data.x.length / data.n), dims: [1, ...data.dims.slice(1)] };
  return (await predict(ctx.model.onnx, one, ctx.runtime)).numClasses;
}

/** Up to `cap` images of each class, in a seeded order (the same order for any cap). */
export function imagesByClass(data: Dataset, k: number, cap: number, seed: number): number[][] {
  return Array.from({ length: k }, (_, c) => new SeededRandom(SeededRandom.derive(seed, 7919, c)).shuffle(indicesOfClass(data, c)).slice(0, cap));
}
