/**
 * Assembles one ONNX graph holding the forward pass, the loss (or fed upstream gradients) and
 * the backward pass; its outputs are the loss, the requested gradients and fetched tensors.
 */
import { valueInfo } from '../graph/builder';
import { removeDeadNodes } from '../graph/fold';
import { OnnxModel, type Dim } from '../graph/model';
import type { ValueInfoProto } from '../graph/proto';
import { BackdoorLensError } from '../errors';
import { emitBackward } from './backward';
import { Emitter } from './emitter';
import { unsupportedModel } from './errors';
import { emitLoss } from './loss';
import { prepareForward, tensorAndNodeNames, type PreparedForward } from './prepare';
import type { GradientGraph, GradientSpec, VjpGraph, VjpSpec } from './types';

/** `observed`: measured shapes of tensors static inference cannot derive (observeShapes). */
export function buildGradientGraph(model: OnnxModel, spec: GradientSpec, observed?: ReadonlyMap<string, Dim[]>): GradientGraph {
  const logits = spec.logits ?? model.outputs()[0]?.name;
  if (!logits) throw unsupportedModel(model, 'the model has no outputs');
  const prepared = prepareForward(model, spec.wrt, observed);
  requireTensor(prepared, logits, 'logits');
  const e = new Emitter(prepared.model, prepared.shapes, prepared.opset, tensorAndNodeNames(prepared.model));
  const batch = prepared.shapes.get(logits)?.[0] ?? 'N';
  const labelsInput = e.builder.input(e.fresh('labels'), 'int64', [batch]);
  const weightsInput = spec.weighted ? e.builder.input(e.fresh('weights'), 'float32', [batch]) : undefined;
  const softLabelsInput = spec.loss.kind === 'soft-cross-entropy' ? e.builder.input(e.fresh('soft_labels'), 'float32', [batch, prepared.shapes.get(logits)?.[1] ?? 'K']) : undefined;
  const loss = emitLoss(e, logits, spec.loss, labelsInput, weightsInput, softLabelsInput);
  const grads = emitBackward(prepared, e, new Map([[logits, loss.seed]]), spec.wrt);
  const out = new OutputList(e);
  const lossOutput = out.add(loss.loss, loss.loss, []);
  const gradOutputs = gradientOutputs(prepared, e, out, spec.wrt, grads);
  const fetchOutputs = fetchedOutputs(prepared, e, out, spec.fetch ?? []);
  return {
    model: assemble(prepared, e, out.values, model.source),
    labelsInput,
    ...(weightsInput ? { weightsInput } : {}),
    ...(softLabelsInput ? { softLabelsInput } : {}),
    lossOutput,
    gradOutputs,
    fetchOutputs,
    defaults: prepared.promoted,
  };
}

/** A graph computing forward tensors and, given their upstream gradients as inputs, gradients of wrt tensors. */
export function buildVjpGraph(model: OnnxModel, spec: VjpSpec): VjpGraph {
  const prepared = prepareForward(model, spec.wrt);
  const targets = spec.outputs ?? model.outputs().map((o) => o.name);
  for (const t of targets) requireTensor(prepared, t, 'output');
  const e = new Emitter(prepared.model, prepared.shapes, prepared.opset, tensorAndNodeNames(prepared.model));
  const seedInputs = new Map<string, string>();
  for (const t of targets) {
    const dims = prepared.shapes.get(t);
    if (!dims) throw unsupportedModel(model, `the shape of '${t}' is not known`);
    seedInputs.set(t, e.builder.input(e.fresh(`${t}_upstream_grad`), 'float32', dims));
  }
  const grads = emitBackward(prepared, e, seedInputs, spec.wrt);
  const out = new OutputList(e);
  const fetchOutputs = fetchedOutputs(prepared, e, out, [...targets, ...(spec.fetch ?? []).filter((f) => !targets.includes(f))]);
  const gradOutputs = gradientOutputs(prepared, e, out, spec.wrt, grads);
  return { model: assemble(prepared, e, out.values, model.source), seedInputs, gradOutputs, fetchOutputs, defaults: prepared.promoted };
}

function requireTensor(prepared: PreparedForward, name: string, what: string): void {
  const m = prepared.model;
  if (!m.producerOf(name) && !m.graph.input.some((i) => i.name === name)) {
    throw new BackdoorLensError('usage', `${m.source}: no tensor named '${name}' to use as ${what}`, { file: m.source });
  }
}

/** Graph outputs under unique names; a tensor already listed (or not ours to rename) gets an Identity. */
class OutputList {
  readonly values: ValueInfoProto[] = [];
  private readonly names = new Set<string>();
  constructor(private readonly e: Emitter) {}

  add(tensor: string, preferred: string, dims: readonly (number | string)[] | undefined): string {
    const backwardProducer = this.e.nodes.find((n) => n.output.includes(tensor));
    const consumed = this.e.nodes.some((n) => n.input.includes(tensor));
    let name = tensor;
    if (this.names.has(tensor) || !backwardProducer || consumed) {
      name = this.e.builder.node('Identity', [tensor], {}, { outputs: [preferred] })[0];
    } else if (tensor !== preferred) {
      backwardProducer.output = backwardProducer.output.map((o) => (o === tensor ? preferred : o));
      name = preferred;
    }
    this.names.add(name);
    this.values.push(valueInfo(name, 'float32', dims));
    return name;
  }

  /** A forward tensor under its own name, with its declared element type (float32 when none is declared). */
  addForward(tensor: string, dims: readonly (number | string)[] | undefined, declared?: ValueInfoProto): string {
    if (this.names.has(tensor)) return tensor;
    this.names.add(tensor);
    const info = valueInfo(tensor, 'float32', dims);
    const elemType = declared?.type?.tensor_type?.elem_type;
    if (elemType !== undefined) info.type!.tensor_type!.elem_type = elemType;
    this.values.push(info);
    return tensor;
  }
}

function gradientOutputs(prepared: PreparedForward, e: Emitter, out: OutputList, wrt: readonly string[], grads: Map<string, string | undefined>): Map<string, string> {
  const result = new Map<string, string>();
  for (const w of wrt) {
    if (result.has(w)) continue;
    const grad = grads.get(w) ?? e.zerosLike(w);
    result.set(w, out.add(grad, e.fresh(`${w}_grad`), prepared.shapes.get(w)));
  }
  return result;
}

function fetchedOutputs(prepared: PreparedForward, e: Emitter, out: OutputList, fetch: readonly string[]): Map<string, string> {
  const result = new Map<string, string>();
  for (const f of fetch) {
    if (result.has(f)) continue;
    requireTensor(prepared, f, 'a fetched tensor');
    const isInput = prepared.model.graph.input.some((i) => i.name === f);
    const dims = prepared.shapes.get(f);
    const declared = [...prepared.model.graph.output, ...prepared.model.graph.value_info].find((v) => v.name === f);
    const name = isInput ? out.add(f, e.fresh(`${f}_fetched`), dims) : out.addForward(f, dims, declared);
    result.set(f, name);
  }
  return result;
}

function assemble(prepared: PreparedForward, e: Emitter, outputs: ValueInfoProto[], source: string): OnnxModel {
  const forward = prepared.model;
  const graph = forward.graph;
  graph.node = [...graph.node, ...e.nodes];
  graph.initializer = [...graph.initializer, ...e.builder.graph.initializer];
  graph.input = [...graph.input, ...e.builder.graph.input];
  graph.output = outputs;
  // Only tensors that backward nodes still produce under that name (outputs may have been renamed).
  const produced = new Set(e.nodes.flatMap((n) => n.output));
  const listed = new Set(outputs.map((o) => o.name));
  graph.value_info = [...e.gradientShapes].filter(([name]) => produced.has(name) && !listed.has(name)).map(([name, dims]) => valueInfo(name, 'float32', dims));
  const combined = new OnnxModel(forward.proto, source);
  removeDeadNodes(combined);
  return combined;
}
