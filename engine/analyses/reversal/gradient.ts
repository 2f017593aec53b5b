/**
 * The network side of input optimisation: weighted gradient sessions per model, returning
 * ∂(Σ_i w_i·ℓ_i)/∂x_i and the logits of the same forward pass. ℓ is the cross-entropy towards each
 * sample's target (trigger reversal; or −log(1 − p_y) away from the true class for an 'away' goal,
 * built on first use) or the margin z_t − max_{j≠t} z_j (MM-BD).
 */
import { GradientSession, type LossSpec } from '../../autodiff';
import { imageInputOf } from '../../evaluate';
import type { OnnxModel } from '../../graph/model';
import type { Runtime } from '../../runtime/session';
import type { BatchGradient } from './batch';

export async function inputGradient(runtime: Runtime, model: OnnxModel, loss: LossSpec = { kind: 'target-cross-entropy' }): Promise<BatchGradient> {
  const input = imageInputOf(model).name;
  const logits = model.outputs()[0].name;
  const toward = await GradientSession.create(runtime, model, { loss, weighted: true, wrt: [input], fetch: [logits], logits });
  let away: Promise<GradientSession> | undefined;
  return async ({ x, dims, labels, weights, goal }) => {
    const session = goal === 'away' ? await (away ??= GradientSession.create(runtime, model, { loss: { kind: 'away-cross-entropy' }, weighted: true, wrt: [input], fetch: [logits], logits })) : toward;
    const r = await session.run({ inputs: { [input]: { dtype: 'float32', dims, data: x } }, labels, weights });
    return { dx: r.grads[input], logits: r.fetched[logits].data as Float32Array };
  };
}
