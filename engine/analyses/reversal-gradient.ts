/**
 * The network side of trigger reversal: one weighted cross-entropy gradient session per model,
 * returning ∂(Σ_i w_i·CE(f(x_i), t_i))/∂x_i and the logits of the same forward pass.
 */
import { GradientSession } from '../autodiff';
import { imageInputOf } from '../evaluate';
import type { OnnxModel } from '../graph/model';
import type { Runtime } from '../runtime/session';
import type { BatchGradient } from './reversal-batch';

export async function inputGradient(runtime: Runtime, model: OnnxModel): Promise<BatchGradient> {
  const input = imageInputOf(model).name;
  const logits = model.outputs()[0].name;
  const session = await GradientSession.create(runtime, model, { loss: { kind: 'target-cross-entropy' }, weighted: true, wrt: [input], fetch: [logits], logits });
  return async ({ x, dims, labels, weights }) => {
    const r = await session.run({ inputs: { [input]: { dtype: 'float32', dims, data: x } }, labels, weights });
    return { dx: r.grads[input], logits: r.fetched[logits].data as Float32Array };
  };
}
