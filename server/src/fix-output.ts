/** Where a fix writes: `<name>.purified.onnx` beside the input, then `-2`, `-3`… — never over a file. */
import { existsSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';

export interface FixOutputs {
  onnx: string;
  /** The purified weights under their original keys, for state_dict inputs. */
  safetensors?: string;
}

export function purifiedOutputs(input: string, withSafetensors: boolean, exists: (p: string) => boolean = existsSync): FixOutputs {
  const dir = dirname(input);
  const name = basename(input, extname(input));
  for (let i = 1; ; i++) {
    const stem = join(dir, `${name}.purified${i === 1 ? '' : `-${i}`}`);
    const out: FixOutputs = { onnx: `${stem}.onnx`, ...(withSafetensors ? { safetensors: `${stem}.safetensors` } : {}) };
    if (!exists(out.onnx) && !(out.safetensors && exists(out.safetensors))) return out;
  }
}
