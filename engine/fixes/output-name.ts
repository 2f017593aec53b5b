/**
 * What a fix's output is called: its name says what the fix has shown and nothing more.
 *   removed, weights changed   <name>.purified.onnx
 *   removed, BNA               <name>.corrected.onnx   (f keeps its weights; the rule corrects inputs)
 *   reduced                    <name>.<method>-reduced.onnx
 *   failed                     <name>.<method>-failed.onnx
 * Never over an existing file: -2, -3, … before the extension. State_dict inputs get a
 * .safetensors twin with the same stem.
 */
import { basename, dirname, extname, join } from 'node:path';
import type { FixOutcome } from './outcome';

export interface FixOutputs {
  onnx: string;
  /** The fixed weights under their original keys, for state_dict inputs. */
  safetensors?: string;
}

export function outputLabel(method: string, outcome: FixOutcome): string {
  if (outcome === 'removed') return method === 'bna' ? 'corrected' : 'purified';
  return `${method}-${outcome}`;
}

/** The first free `<name>.<label>[-k].onnx` beside the input. */
export function fixOutputs(input: string, label: string, withSafetensors: boolean, exists: (p: string) => boolean): FixOutputs {
  const dir = dirname(input);
  const name = basename(input, extname(input));
  for (let i = 1; ; i++) {
    const stem = join(dir, `${name}.${label}${i === 1 ? '' : `-${i}`}`);
    const out: FixOutputs = { onnx: `${stem}.onnx`, ...(withSafetensors ? { safetensors: `${stem}.safetensors` } : {}) };
    if (!exists(out.onnx) && !(out.safetensors && exists(out.safetensors))) return out;
  }
}
