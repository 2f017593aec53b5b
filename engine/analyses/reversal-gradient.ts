/**
 * The network side of trigger reversal: weighted gradient sessions per model, returning
 * ∂(Σ_i w_i·ℓ_i)/∂x_i and the logits of the same forward pass, with ℓ_i = CE(f(x_i), t_i) toward
 * a target, or ℓ_i = −log(1 − p_{y_i}) away from the true class (built on first use).
 */
import { GradientSession } from '../autodiff';
import { imageInputOf } from '../evaluate';
import type { OnnxModel } from '../graph/model';
import type { Runtime } from '../runtime/session';
import type { BatchGradient } from './reversal-batch';

export async function inputGradient(runtime: Runtime, model: OnnxModel): Promise<BatchGradient> {
  const input = imageInputOf(model).name;
  const logits = model.outputs()[0].name;
  const toward = await GradientSession.create(runtime, model, { loss: { kind: 'target-cross-entropy' }, weighted: true, wrt: [input], fetch: [logits], logits });
  let away: Promise<GradientSession> | undefined;
  return async ({ x, dims, labels, weights, goal }) => {
    const session = goal === 'away' ? await (away ??= GradientSession.create(runtime, model, { loss: { kind: 'away-cross-entropy' }, weighted: true, wrt: [input], fetch: [logits], logits })) : toward;
    const r = await session.run({ inputs: { [input]: { dtype: 'float32', dims, data: x } }, labels, weights });
    return { dx: r.grads[input], logits: r.fetched[logits].data as Float32Array };
  };
}
