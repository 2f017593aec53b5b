/**
 * Pruning neurons in the weights: zero γ and β of the flagged BN channels, or, where no BN
 * normalises the channel (BN folded at export, or a conv no BN follows), the conv filter and its
 * bias. Either way the channel's output becomes exactly 0. Returns a new model; the input model
 * is never changed.
 */
import { BackdoorLensError } from '../../errors';
import { OnnxModel } from '../../graph/model';
import type { Tensor } from '../../tensor';
import { bnNeuronLayers, convNeuronLayers, ownParameters, type NeuronLayer } from './layers';

export interface NeuronRef {
  layer: string;
  channel: number;
}

/** Every layer a neuron name can refer to, BN layers first (their names win over conv names). */
export function prunableLayers(model: OnnxModel): Map<string, NeuronLayer> {
  const byName = new Map<string, NeuronLayer>();
  for (const l of [...bnNeuronLayers(model), ...convNeuronLayers(model)]) if (!byName.has(l.name)) byName.set(l.name, l);
  for (const l of convNeuronLayers(model)) if (l.conv && !byName.has(l.conv.name)) byName.set(l.conv.name, { ...l, name: l.conv.name, bn: undefined, gateNode: l.conv.node });
  return byName;
}

function zeroRows(t: Tensor, rows: Set<number>): Tensor {
  const data = Float32Array.from(t.data as Float32Array);
  const per = t.dims.slice(1).reduce((a, b) => a * b, 1);
  for (const r of rows) data.fill(0, r * per, (r + 1) * per);
  return { dtype: 'float32', dims: [...t.dims], data };
}

export function pruneNeurons(model: OnnxModel, neurons: readonly NeuronRef[], source = model.source): OnnxModel {
  const layers = prunableLayers(model);
  const byLayer = new Map<string, Set<number>>();
  for (const n of neurons) {
    const layer = layers.get(n.layer);
    if (!layer) throw new BackdoorLensError('internal', `${model.source}: no prunable layer named '${n.layer}'`);
    if (!Number.isInteger(n.channel) || n.channel < 0 || n.channel >= layer.channels) throw new BackdoorLensError('internal', `${model.source}: layer ${n.layer} has no channel ${n.channel} (it has ${layer.channels})`);
    let set = byLayer.get(n.layer);
    if (!set) byLayer.set(n.layer, (set = new Set()));
    set.add(n.channel);
  }
  const own = ownParameters(model);
  const out = own === model ? model.clone(source) : new OnnxModel(own.proto, source);
  for (const [name, channels] of byLayer) {
    const layer = layers.get(name)!;
    const params = layer.bn ? [layer.bn.scale, layer.bn.bias] : [layer.conv!.weight, layer.conv!.bias].filter((p): p is string => !!p);
    for (const p of params) {
      const t = out.initializer(p);
      if (!t || t.dtype !== 'float32') throw new BackdoorLensError('unsupported-model', `${model.source}: cannot prune ${name}: parameter '${p}' is not a stored float32 tensor`);
      out.setInitializer(p, zeroRows(t, channels));
    }
  }
  return out;
}
