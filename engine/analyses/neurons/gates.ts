/**
 * A model with a per-channel gate after every neuron layer: out = x·scale + shift, scale and shift
 * graph inputs of shape [C]. Feeding ones and zeros gives the original model; a 0 scale prunes a
 * channel exactly as zeroing its BN γ and β (or its conv filter and bias) does. One compiled
 * session then evaluates any pruning, which is what the threshold searches need, and the gate
 * inputs are what ANP differentiates with respect to.
 */
import type { Dataset } from '../../data/types';
import { badData } from '../../errors';
import { argmaxRows, imageInputOf } from '../../evaluate';
import { valueInfo } from '../../graph/builder';
import type { OnnxModel } from '../../graph/model';
import { inferShapes } from '../../graph/shapes';
import { splitAtInputs } from '../../graph/split';
import type { NodeProto } from '../../graph/proto';
import type { Runtime } from '../../runtime/session';
import { sizeOf, type Tensor } from '../../tensor';
import type { NeuronLayer } from './layers';
import type { NeuronRef } from './prune';

export interface Gate {
  layer: NeuronLayer;
  scale: string;
  shift: string;
}

export interface GatedModel {
  model: OnnxModel;
  gates: Gate[];
  /** The image input (the original model's only input). */
  input: string;
}

function takenNames(model: OnnxModel): Set<string> {
  const taken = new Set<string>();
  for (const n of model.nodes) for (const t of [...n.input, ...n.output, n.name ?? '']) taken.add(t);
  for (const v of [...model.graph.input, ...model.graph.output, ...model.graph.initializer]) taken.add(v.name ?? '');
  return taken;
}

/** Inserts a gate after each layer's gate node (BN, or conv without BN), in one copy of the model. */
export function gateLayers(model: OnnxModel, layers: NeuronLayer[]): GatedModel {
  const input = imageInputOf(model).name;
  const copy = model.clone();
  const shapes = inferShapes(copy).shapes;
  const taken = takenNames(copy);
  const fresh = (hint: string) => {
    let name = hint;
    for (let i = 1; taken.has(name); i++) name = `${hint}_${i}`;
    taken.add(name);
    return name;
  };
  const gates: Gate[] = [];
  for (const layer of layers) {
    const node = copy.nodes.find((n) => n.output[0] === layer.gateNode.output[0])!;
    const tensor = node.output[0];
    const rank = shapes.get(tensor)?.length ?? 4;
    const scale = fresh(`${layer.name}.gate_scale`), shift = fresh(`${layer.name}.gate_shift`);
    const shape = fresh(`${layer.name}.gate_shape`);
    copy.setInitializer(shape, { dtype: 'int64', dims: [rank], data: BigInt64Array.from([1n, BigInt(layer.channels), ...new Array<bigint>(Math.max(0, rank - 2)).fill(1n)]) });
    const s4 = fresh(`${scale}.bcast`), b4 = fresh(`${shift}.bcast`), scaled = fresh(`${tensor}.gated_mul`), out = fresh(`${tensor}.gated`);
    for (const n of copy.nodes) n.input = n.input.map((i) => (i === tensor ? out : i));
    for (const o of copy.graph.output) if (o.name === tensor) o.name = out;
    const added: NodeProto[] = [
      { op_type: 'Reshape', input: [scale, shape], output: [s4], attribute: [], name: fresh(`${layer.name}/gate_scale_reshape`) },
      { op_type: 'Reshape', input: [shift, shape], output: [b4], attribute: [], name: fresh(`${layer.name}/gate_shift_reshape`) },
      { op_type: 'Mul', input: [tensor, s4], output: [scaled], attribute: [], name: fresh(`${layer.name}/gate_mul`) },
      { op_type: 'Add', input: [scaled, b4], output: [out], attribute: [], name: fresh(`${layer.name}/gate_add`) },
    ];
    copy.nodes.splice(copy.nodes.indexOf(node) + 1, 0, ...added);
    copy.graph.input.push(valueInfo(scale, 'float32', [layer.channels]), valueInfo(shift, 'float32', [layer.channels]));
    gates.push({ layer, scale, shift });
  }
  copy.invalidate();
  return { model: copy, gates, input };
}

/** Per layer: the scale and shift fed to its gate. */
export type GateValues = Map<string, { scale: Float32Array; shift: Float32Array }>;

export function openGates(gates: Gate[]): GateValues {
  return new Map(gates.map((g) => [g.layer.name, { scale: new Float32Array(g.layer.channels).fill(1), shift: new Float32Array(g.layer.channels) }]));
}

/** Gate values that prune the given neurons (scale 0, shift 0) and pass every other channel. */
export function pruningGates(gates: Gate[], pruned: readonly NeuronRef[]): GateValues {
  const values = openGates(gates);
  for (const n of pruned) {
    const v = values.get(n.layer);
    if (v) (v.scale[n.channel] = 0), (v.shift[n.channel] = 0);
  }
  return values;
}

export function gateFeeds(gates: Gate[], values: GateValues): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const g of gates) {
    const v = values.get(g.layer.name)!;
    feeds[g.scale] = { dtype: 'float32', dims: [g.layer.channels], data: v.scale };
    feeds[g.shift] = { dtype: 'float32', dims: [g.layer.channels], data: v.shift };
  }
  return feeds;
}

/** Per-sample inputs of a model: `values` holds `perSample` floats of shape `dims` per sample, sample-major. */
interface SampleInput {
  name: string;
  perSample: number;
  dims: readonly number[];
  values: Float32Array;
}

/**
 * Predicted classes of `n` samples, batch by batch: every sample input is fed as a view of its
 * batch (no copy), beside the fixed feeds (the gate values). The one loop of the whole gated
 * model and of its kept tail.
 */
async function argmaxOverSamples(runtime: Runtime, model: OnnxModel, n: number, samples: readonly SampleInput[], fixed: Record<string, Tensor>, options: { batchSize: number; signal?: AbortSignal }, source: string): Promise<Int32Array> {
  const session = await runtime.session(model);
  const output = model.outputs()[0].name;
  const out = new Int32Array(n);
  for (let start = 0; start < n; start += options.batchSize) {
    options.signal?.throwIfAborted();
    const count = Math.min(options.batchSize, n - start);
    const feeds: Record<string, Tensor> = { ...fixed };
    for (const s of samples) feeds[s.name] = { dtype: 'float32', dims: [count, ...s.dims], data: s.values.subarray(start * s.perSample, (start + count) * s.perSample) };
    const t = (await session.run(feeds, [output]))[output];
    if (t.dims.length !== 2 || t.dims[0] !== count) throw badData(source, `${model.source} output '${output}' has shape [${t.dims.join(', ')}]; a classifier's logits must be [N, classes]`);
    out.set(argmaxRows(t.data as Float32Array, t.dims[1]), start);
  }
  return out;
}

/** Predicted classes of every sample with the given gate values. */
export async function gatedPredictions(runtime: Runtime, gated: GatedModel, data: Dataset, values: GateValues, options: { batchSize: number; signal?: AbortSignal }): Promise<Int32Array> {
  const dims = data.dims.slice(1);
  const input = { name: gated.input, perSample: sizeOf(dims), dims, values: data.x };
  return argmaxOverSamples(runtime, gated.model, data.n, [input], gateFeeds(gated.gates, values), options, data.source);
}

/**
 * Predictions of one gated model under many gate values, over the same images (the threshold
 * searches of Fine-Pruning and the pruning fixes). When the gates sit late in the network, the part
 * before them does not change with the gate values: it runs once, its outputs are kept, and each
 * evaluation runs only the rest (Fine-Pruning's last conv layer: the pooling and the classifier).
 * The kept outputs may hold no more memory than the images themselves (or 256 MiB); otherwise, and
 * when no cut saves work, every evaluation runs the whole network as gatedPredictions does.
 */
export class GatedEvaluator {
  private constructor(
    private readonly runtime: Runtime,
    private readonly gated: GatedModel,
    private readonly data: Dataset,
    private readonly options: { batchSize: number; signal?: AbortSignal },
    private readonly cut?: { tail: OnnxModel; inputs: SampleInput[] },
  ) {}

  /** Whether the part before the gates was run once and kept. */
  get cached(): boolean {
    return this.cut !== undefined;
  }

  static async create(runtime: Runtime, gated: GatedModel, data: Dataset, options: { batchSize: number; signal?: AbortSignal }): Promise<GatedEvaluator> {
    const split = splitAtInputs(gated.model, gated.input, gated.gates.flatMap((g) => [g.scale, g.shift]));
    const floats = split ? data.n * split.frontier.reduce((sum, f) => sum + f.perSample, 0) : Infinity;
    if (!split || 4 * floats > Math.max(256 * 2 ** 20, data.x.byteLength)) return new GatedEvaluator(runtime, gated, data, options);
    const tailInputs = new Map(split.tail.inputs().map((v) => [v.name, v.dims.slice(1) as number[]]));
    const inputs = split.frontier.map((f) => ({ ...f, dims: tailInputs.get(f.name)!, values: new Float32Array(data.n * f.perSample) }));
    const head = await runtime.session(split.head);
    await head.runBatched(
      { name: gated.input, data: data.x, dims: data.dims },
      options.batchSize,
      (outputs, start) => {
        for (const i of inputs) i.values.set(outputs[i.name].data as Float32Array, start * i.perSample);
      },
      { fetches: inputs.map((i) => i.name), signal: options.signal },
    );
    return new GatedEvaluator(runtime, gated, data, options, { tail: split.tail, inputs });
  }

  async predictions(values: GateValues): Promise<Int32Array> {
    if (!this.cut) return gatedPredictions(this.runtime, this.gated, this.data, values, this.options);
    return argmaxOverSamples(this.runtime, this.cut.tail, this.data.n, this.cut.inputs, gateFeeds(this.gated.gates, values), this.options, this.data.source);
  }
}
