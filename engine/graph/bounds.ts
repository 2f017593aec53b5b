/**
 * What a graph may make before it runs: the elements each node would produce, from the graph's own
 * shapes (engine shape inference, symbolic batch taken as 1), against the tensor size limit. A model
 * of a few kilobytes can ask onnxruntime for gigabytes (ConstantOfShape, Expand, Tile, Range with
 * constant sizes) or for 10^15 trips of a Loop; those are refused here, naming the node, before any
 * session exists. Sizes only known at run time (computed from the input's values) are left to the
 * job's memory and time limits.
 */
import { BackdoorLensError } from '../errors';
import type { Dim, OnnxModel } from './model';
import { inferShapes } from './shapes';

function elements(dims: Dim[]): number | undefined {
  let n = 1;
  for (const d of dims) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return n;
}

function overLimit(model: OnnxModel, what: string, elementCount: number, limit: number, unit = 'elements'): BackdoorLensError {
  return new BackdoorLensError(
    'limit',
    `${what}: ${elementCount.toExponential(2)} ${unit}, over the tensor size limit of ${limit}; raise limits.maxTensorElements in backdoor-lens.json (--max-tensor-elements on the command line) to run it`,
    { file: model.source },
  );
}

/** Throws a limit error naming the first node that would produce more than `maxElements` elements. */
export function checkNodeBounds(model: OnnxModel, maxElements: number, interrupt?: { throwIfAborted(): void }): void {
  const batchOne = Object.fromEntries(model.inputs().map((i) => [i.name, i.dims.map((d) => (typeof d === 'number' ? d : 1))]));
  const { shapes, ints } = inferShapes(model, batchOne, { interrupt });
  let visited = 0;
  for (const node of model.nodes) {
    if (interrupt && ++visited % 1024 === 0) interrupt.throwIfAborted();
    const name = `${node.op_type} node '${model.nodeName(node)}'`;
    for (const out of node.output) {
      const dims = out ? shapes.get(out) : undefined;
      const n = dims ? elements(dims) : undefined;
      if (n !== undefined && n > maxElements) throw overLimit(model, `${name} would make a tensor of shape [${dims!.join(', ')}]`, n, maxElements);
    }
    const scalar = (i: number) => {
      const v = node.input[i] ? ints.get(node.input[i])?.values : undefined;
      return v?.length === 1 && typeof v[0] === 'number' ? v[0] : undefined;
    };
    if (node.op_type === 'Range') {
      const [start, limit, delta] = [scalar(0), scalar(1), scalar(2)];
      if (start !== undefined && limit !== undefined && delta) {
        const n = Math.max(0, Math.ceil((limit - start) / delta));
        if (n > maxElements) throw overLimit(model, `${name} would make a range of ${n} values`, n, maxElements);
      }
    }
    if (node.op_type === 'Loop') {
      // Each trip runs the whole body: its node count times the trips bounds the work from below.
      const trips = scalar(0);
      const body = node.attribute.find((a) => a.name === 'body')?.g;
      const work = trips === undefined ? undefined : trips * Math.max(1, body?.node.length ?? 1);
      if (work !== undefined && work > maxElements) throw overLimit(model, `${name} would run ${trips} trips of its ${body?.node.length ?? 0}-node body`, work, maxElements, 'node runs');
    }
  }
}
