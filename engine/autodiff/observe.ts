/**
 * Shapes that static inference cannot derive, measured instead: ONNX Runtime runs the model on
 * a batch of one and a batch of two images with the unknown tensors as extra outputs. A
 * dimension equal in both runs is static; one that doubles is the batch times its size at
 * batch one (N, N*k). Used only when the gradient graph cannot be built from static shapes
 * (a class count computed at run time, a shape chain through an op the folder does not know).
 */
import * as ort from 'onnxruntime-node';
import { BackdoorLensError } from '../errors';
import type { Dim, OnnxModel } from '../graph/model';
import type { ValueInfoProto } from '../graph/proto';
import { inferShapes } from '../graph/shapes';
import type { Runtime } from '../runtime/session';
import { sizeOf } from '../tensor';

/** Float tensors the static inference leaves without a (fully known) shape, graph outputs included. */
function unknownTensors(model: OnnxModel): string[] {
  const { shapes } = inferShapes(model);
  const names = new Set<string>();
  for (const node of model.nodes) {
    for (const o of node.output) {
      const dims = o ? shapes.get(o) : undefined;
      if (o && (!dims || dims.includes('?'))) names.add(o);
    }
  }
  return [...names];
}

/**
 * Measured shapes of the tensors static inference does not know (empty when it knows them all,
 * or when the model is not a single-image-input classifier this can feed).
 */
export async function observeShapes(runtime: Runtime, model: OnnxModel): Promise<Map<string, Dim[]>> {
  const observed = new Map<string, Dim[]>();
  const inputs = model.inputs();
  if (inputs.length !== 1) return observed;
  const [input] = inputs;
  const rest = input.dims.slice(1);
  if (rest.some((d) => typeof d !== 'number' || d <= 0)) return observed;
  const unknown = unknownTensors(model);
  if (unknown.length === 0) return observed;
  const probe = model.clone();
  const listed = new Set(probe.graph.output.map((o) => o.name));
  // Outputs without a declared type: ONNX Runtime takes each one's type from the node making it.
  probe.graph.output.push(...unknown.filter((t) => !listed.has(t)).map((name): ValueInfoProto => ({ name })));
  probe.invalidate();
  // Its own session, released at once (the runtime's cache would keep a second copy of the weights).
  let session: ort.InferenceSession;
  try {
    const threads = runtime.options.threads;
    session = await ort.InferenceSession.create(probe.toBytes(), { executionProviders: ['cpu'], ...(threads > 0 ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}) });
  } catch (e) {
    throw new BackdoorLensError('unsupported-model', `${model.source}: onnxruntime cannot run the model to measure its shapes: ${(e as Error).message.split('\n')[0]}`, { file: model.source, cause: e });
  }
  const batchSymbol = typeof input.dims[0] === 'string' ? input.dims[0] : undefined;
  const run = async (batch: number): Promise<Record<string, readonly number[]>> => {
    const dims = [batch, ...(rest as number[])];
    const out = await session.run({ [input.name]: new ort.Tensor('float32', new Float32Array(sizeOf(dims)), dims) }, unknown);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.dims]));
  };
  let one: Record<string, readonly number[]>, two: Record<string, readonly number[]>;
  try {
    one = await run(1);
    two = batchSymbol ? await run(2) : one;
  } catch (e) {
    throw new BackdoorLensError('unsupported-model', `${model.source}: running the model to measure its shapes failed: ${(e as Error).message.split('\n')[0]}`, { file: model.source, cause: e });
  } finally {
    await session.release();
  }
  for (const name of unknown) {
    const a = one[name], b = two[name];
    if (!a || !b || a.length !== b.length) continue;
    observed.set(
      name,
      a.map((d, i): Dim => {
        if (b[i] === d) return d;
        if (batchSymbol && b[i] === 2 * d) return d === 1 ? batchSymbol : `${batchSymbol}*${d}`;
        return '?';
      }),
    );
  }
  return observed;
}
