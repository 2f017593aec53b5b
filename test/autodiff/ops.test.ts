/**
 * Every supported op and attribute variant against PyTorch autograd (fixtures made by
 * tools/fixtures/autodiff_ops.py), plus central finite differences of the ONNX Runtime
 * forward pass (float64 where ORT has double kernels for the ops, float32 otherwise). Cases
 * whose inputs sit on ties and kinks on purpose (finiteDifferences: false) are judged by
 * PyTorch's convention alone: there the function has no derivative for a difference quotient
 * to approach; each such op also has a case off the kinks that is differenced.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildVjpGraph } from '../../engine/autodiff';
import { OnnxModel } from '../../engine/graph/model';
import { Runtime } from '../../engine/runtime';
import type { Tensor } from '../../engine/tensor';
import { autodiffFixtures, finiteDifferences, floats, maxRelativeError, readArrays } from './helpers';

interface OpCase {
  name: string;
  op: string;
  opset: number;
  wrt: string[];
  outputs: string[];
  note: string;
  /** False where the inputs are on ties or kinks on purpose. */
  finiteDifferences?: boolean;
}

const cases = JSON.parse(readFileSync(join(autodiffFixtures, 'ops.json'), 'utf8')) as OpCase[];
const runtime = new Runtime({ threads: 1 });
after(() => runtime.dispose());

describe('gradient rules match PyTorch autograd', () => {
  for (const c of cases) {
    test(`${c.name} (${c.op}, opset ${c.opset})${c.note ? `: ${c.note}` : ''}`, async (t) => {
      const path = join(autodiffFixtures, 'ops', `${c.name}.onnx`);
      const model = OnnxModel.fromBytes(readFileSync(path), path);
      const arrays = readArrays(join(autodiffFixtures, 'ops', `${c.name}.npz`));
      const graph = buildVjpGraph(model, { wrt: c.wrt, outputs: c.outputs });
      const feeds: Record<string, Tensor> = {};
      const inputs = new Map<string, Tensor>();
      for (const [key, value] of arrays) {
        if (key.startsWith('in.')) {
          feeds[key.slice(3)] = value;
          inputs.set(key.slice(3), value);
        }
      }
      for (const [name, value] of graph.defaults) feeds[name] = value;
      const upstream = new Map<string, Float32Array>();
      for (const [output, seed] of graph.seedInputs) {
        const gy = arrays.get(`gy.${output}`)!;
        feeds[seed] = gy;
        upstream.set(output, floats(gy, `gy.${output}`));
      }
      const session = await runtime.session(graph.model);
      const out = await session.run(feeds);
      for (const output of c.outputs) {
        const err = maxRelativeError(floats(out[graph.fetchOutputs.get(output)!], output), floats(arrays.get(`y.${output}`), `y.${output}`));
        assert.ok(err <= 1e-3, `forward output ${output}: relative error ${err}`);
      }
      const grads = new Map<string, Float32Array>();
      for (const w of c.wrt) {
        const actual = floats(out[graph.gradOutputs.get(w)!], `gradient of ${w}`);
        const err = maxRelativeError(actual, floats(arrays.get(`grad.${w}`), `grad.${w}`));
        assert.ok(err <= 1e-3, `gradient of ${w}: max relative error ${err} vs PyTorch`);
        grads.set(w, actual);
      }
      if (c.finiteDifferences === false) {
        t.diagnostic('inputs on ties / kinks: PyTorch convention only');
        return;
      }
      const fd = await finiteDifferences(model, inputs, upstream, grads);
      const tolerance = fd.precision === 'float64' ? 1e-5 : 1e-2;
      for (const [w, err] of fd.errors) assert.ok(err <= tolerance, `finite differences (${fd.precision}) of ${w}: relative error ${err}`);
      t.diagnostic(`finite differences in ${fd.precision}: ${[...fd.errors].map(([w, e]) => `${w} ${e.toExponential(1)}`).join(', ')}`);
    });
  }
});
