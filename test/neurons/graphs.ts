/** Small graphs built in code for the neuron tests: a pre-activation block and a model with no conv. */
import { GraphBuilder } from '../../engine/graph';
import type { OnnxModel } from '../../engine/graph/model';
import type { LoadedModel } from '../../engine/formats/types';
import { floatTensor } from '../../engine/tensor';

export function asLoaded(onnx: OnnxModel, path = '(built)'): LoadedModel {
  return { path, format: 'onnx', sha256: '0'.repeat(64), fileBytes: 0, onnx, findings: [], numClasses: onnx.outputs()[0]?.dims[1] as number ?? null };
}

/** Deterministic pseudo-random values in [-1, 1). */
export function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

export interface PreAct {
  model: OnnxModel;
  /** Per conv: rank-one filters u_k ⊗ v_k, so σmax(W_k) = |u_k|·|v_k|. */
  norms: Record<'conv0' | 'conv1' | 'conv2', number[]>;
  bn: Record<'bnP' | 'bnQ' | 'bnR', { gamma: Float32Array; variance: Float32Array }>;
}

/**
 * stem conv0 → bnP → relu → conv1 → bnQ → relu → conv2 → Add(·, conv0 out) → bnR → relu → GAP → fc.
 * In registration order (bn1, conv1, bn2, conv2) bnR would be paired with conv2; in the graph bnR
 * is fed by the Add and conv2 feeds no BN.
 */
export function preActBlock(): PreAct {
  const b = new GraphBuilder('preact');
  const C = 3;
  const x = b.input('input', 'float32', ['N', 2, 6, 6]);
  const norms: PreAct['norms'] = { conv0: [], conv1: [], conv2: [] };
  const conv = (name: 'conv0' | 'conv1' | 'conv2', input: string, cin: number, seed: number) => {
    const w = new Float32Array(C * cin * 9);
    for (let k = 0; k < C; k++) {
      const u = values(cin, seed + k), v = values(9, seed + 10 + k);
      for (let i = 0; i < cin; i++) for (let j = 0; j < 9; j++) w[k * cin * 9 + i * 9 + j] = u[i] * v[j];
      const nu = Math.hypot(...u), nv = Math.hypot(...v);
      norms[name].push(Math.fround(nu) * Math.fround(nv));
    }
    const weight = b.initializer(`${name}.weight`, floatTensor([C, cin, 3, 3], w));
    return b.op('Conv', [input, weight], { pads: [1, 1, 1, 1] }, name);
  };
  const bnParams: PreAct['bn'] = {} as PreAct['bn'];
  const bn = (name: 'bnP' | 'bnQ' | 'bnR', input: string, seed: number) => {
    const gamma = Float32Array.from(values(C, seed), (g) => g + (g >= 0 ? 0.5 : -0.5));
    const variance = Float32Array.from(values(C, seed + 1), (v) => Math.abs(v) + 0.25);
    bnParams[name] = { gamma, variance };
    const inputs = [
      input,
      b.initializer(`${name}.weight`, floatTensor([C], gamma)),
      b.initializer(`${name}.bias`, floatTensor([C], values(C, seed + 2))),
      b.initializer(`${name}.running_mean`, floatTensor([C], values(C, seed + 3))),
      b.initializer(`${name}.running_var`, floatTensor([C], variance)),
    ];
    return b.op('BatchNormalization', inputs, { epsilon: 1e-5 }, name);
  };
  const stem = conv('conv0', x, 2, 100);
  const q = conv('conv1', b.op('Relu', [bn('bnP', stem, 200)]), C, 300);
  const c2 = conv('conv2', b.op('Relu', [bn('bnQ', q, 400)]), C, 500);
  const r = b.op('Relu', [bn('bnR', b.op('Add', [c2, stem]), 600)]);
  const pooled = b.op('Flatten', [b.op('GlobalAveragePool', [r])]);
  const fcw = b.initializer('fc.weight', floatTensor([2, C], values(2 * C, 700)));
  const fcb = b.initializer('fc.bias', floatTensor([2], values(2, 701)));
  b.output(b.node('Gemm', [pooled, fcw, fcb], { transB: 1 }, { outputs: ['logits'] })[0], 'float32', ['N', 2]);
  return { model: b.build('preact.onnx'), norms, bn: bnParams };
}

/** A classifier with no conv and no BN: Flatten → Gemm. */
export function linearOnly(): OnnxModel {
  const b = new GraphBuilder('linear');
  const x = b.input('input', 'float32', ['N', 1, 28, 28]);
  const w = b.initializer('fc.weight', floatTensor([10, 784], values(7840, 1)));
  const bias = b.initializer('fc.bias', floatTensor([10]));
  b.output(b.node('Gemm', [b.op('Flatten', [x]), w, bias], { transB: 1 }, { outputs: ['logits'] })[0], 'float32', ['N', 10]);
  return b.build('linear.onnx');
}
