/**
 * Runs a model over a data set and hands the chosen intermediate tensors (pre-activations)
 * to the caller batch by batch, as per-channel views: the methods reduce them on the fly, so no
 * activation of the whole set is ever held.
 */
import type { Dataset } from '../../data/types';
import { BackdoorLensError } from '../../errors';
import { imageInputOf } from '../../evaluate';
import type { OnnxModel } from '../../graph/model';
import { exposeTensors } from '../../graph/surgery';
import type { Runtime } from '../../runtime/session';

/** One fetched tensor of one batch: data laid out [count, channels, spatial]. */
export interface ActivationBatch {
  data: Float32Array;
  count: number;
  channels: number;
  /** Elements per channel per sample (H·W; 1 for [N, C] tensors). */
  spatial: number;
}

export interface CollectOptions {
  batchSize: number;
  signal?: AbortSignal;
  progress?(fraction: number, stage: string): void;
}

export async function forEachActivationBatch(
  model: OnnxModel,
  runtime: Runtime,
  data: Dataset,
  tensors: string[],
  onBatch: (tensor: string, batch: ActivationBatch, start: number) => void,
  options: CollectOptions,
): Promise<void> {
  const input = imageInputOf(model);
  const exposed = exposeTensors(model, tensors);
  const session = await runtime.session(exposed);
  const unique = [...new Set(tensors)];
  await session.runBatched(
    { name: input.name, data: data.x, dims: data.dims },
    options.batchSize,
    (outputs, start, count) => {
      for (const name of unique) {
        const t = outputs[name];
        if (!t || t.dtype !== 'float32' || t.dims.length < 2 || t.dims[0] !== count) {
          throw new BackdoorLensError('unsupported-model', `${model.source}: the pre-activation '${name}' is not a float32 [N, C, ...] tensor (got ${t ? `${t.dtype} [${t.dims.join(', ')}]` : 'nothing'})`);
        }
        const spatial = t.dims.slice(2).reduce((a, b) => a * b, 1);
        onBatch(name, { data: t.data as Float32Array, count, channels: t.dims[1], spatial }, start);
      }
      options.progress?.(Math.min(1, (start + count) / data.n), `${start + count}/${data.n} samples`);
    },
    { fetches: unique, signal: options.signal },
  );
}
