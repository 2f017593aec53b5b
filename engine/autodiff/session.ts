/**
 * Runs a gradient graph many times: the session is compiled once and promoted initializers
 * are wrapped once; a call only wraps the caller's buffers (labels given as int32 are widened
 * into a fresh int64 array, so overlapping calls never share a buffer).
 */
import * as ort from 'onnxruntime-node';
import { BackdoorLensError } from '../errors';
import type { OnnxModel } from '../graph/model';
import { toOrtTensor, type ModelSession, type Runtime } from '../runtime/session';
import type { Tensor } from '../tensor';
import { buildGradientGraph } from './graph';
import { observeShapes } from './observe';
import type { GradientGraph, GradientSpec } from './types';

export interface GradientFeeds {
  /** The model's own inputs (e.g. the image batch) and overrides for wrt / promoted tensors by name. */
  inputs: Record<string, Tensor>;
  labels: Int32Array | BigInt64Array;
  weights?: Float32Array;
  /** [N·K] row-major, each row summing to 1: for the soft-cross-entropy loss only. */
  softLabels?: Float32Array;
}

export interface GradientResult {
  loss: number;
  /** wrt name -> gradient (same shape as the tensor). */
  grads: Record<string, Float32Array>;
  fetched: Record<string, Tensor>;
}

export class GradientSession {
  private runs = 0;
  private readonly fetchNames: string[];

  private constructor(
    readonly graph: GradientGraph,
    private readonly session: ModelSession,
    private readonly defaults: ReadonlyMap<string, ort.Tensor>,
  ) {
    this.fetchNames = [graph.lossOutput, ...graph.gradOutputs.values(), ...graph.fetchOutputs.values()];
  }

  /**
   * Builds and compiles the gradient graph. Where static shapes do not suffice (a class count or
   * a reshape computed at run time), the shapes are measured with ONNX Runtime and it builds again.
   */
  static async create(runtime: Runtime, model: OnnxModel, spec: GradientSpec): Promise<GradientSession> {
    let graph: GradientGraph;
    try {
      graph = buildGradientGraph(model, spec);
    } catch (e) {
      if (!(e instanceof BackdoorLensError) || e.code !== 'unsupported-model') throw e;
      const observed = await observeShapes(runtime, model);
      if (observed.size === 0) throw e;
      graph = buildGradientGraph(model, spec, observed);
    }
    const session = await runtime.session(graph.model, `${model.source} (gradient graph)`);
    const defaults = new Map([...graph.defaults].map(([name, t]) => [name, toOrtTensor(t)]));
    return new GradientSession(graph, session, defaults);
  }

  /** Gradient evaluations (run calls) so far. */
  get evaluations(): number {
    return this.runs;
  }

  async run(feeds: GradientFeeds): Promise<GradientResult> {
    const n = feeds.labels.length;
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, value] of this.defaults) ortFeeds[name] = value;
    for (const [name, t] of Object.entries(feeds.inputs)) ortFeeds[name] = toOrtTensor(t);
    ortFeeds[this.graph.labelsInput] = new ort.Tensor('int64', feeds.labels instanceof BigInt64Array ? feeds.labels : BigInt64Array.from(feeds.labels, BigInt), [n]);
    if (this.graph.weightsInput) {
      if (!feeds.weights) throw new BackdoorLensError('usage', 'this gradient graph is weighted: pass per-sample weights');
      if (feeds.weights.length !== n) throw new BackdoorLensError('usage', `got ${feeds.weights.length} weights for ${n} labels`);
      ortFeeds[this.graph.weightsInput] = new ort.Tensor('float32', feeds.weights, [n]);
    } else if (feeds.weights) {
      throw new BackdoorLensError('usage', 'this gradient graph is not weighted: build it with weighted: true to pass weights');
    }
    if (this.graph.softLabelsInput) {
      if (!feeds.softLabels || feeds.softLabels.length % n !== 0 || feeds.softLabels.length === 0) throw new BackdoorLensError('usage', `the soft-cross-entropy loss needs ${n} rows of soft labels`);
      ortFeeds[this.graph.softLabelsInput] = new ort.Tensor('float32', feeds.softLabels, [n, feeds.softLabels.length / n]);
    } else if (feeds.softLabels) {
      throw new BackdoorLensError('usage', 'soft labels are only fed to a graph built with the soft-cross-entropy loss');
    }
    const out = await this.session.run(ortFeeds, this.fetchNames);
    this.runs++;
    const grads: Record<string, Float32Array> = {};
    for (const [wrt, name] of this.graph.gradOutputs) grads[wrt] = out[name].data as Float32Array;
    const fetched: Record<string, Tensor> = {};
    for (const [tensor, name] of this.graph.fetchOutputs) fetched[tensor] = out[name];
    return { loss: (out[this.graph.lossOutput].data as Float32Array)[0], grads, fetched };
  }
}
