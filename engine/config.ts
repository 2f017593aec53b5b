/**
 * backdoor-lens.json: per-folder or per-workspace settings, validated against the committed
 * JSON Schema (schemas/backdoor-lens.schema.json). Paths inside are relative to the file.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { existsSync } from 'node:fs';
import { readRegularFile } from './io/files';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import schema from '../schemas/backdoor-lens.schema.json';
import { BackdoorLensError } from './errors';
import type { PreprocessSpec } from './data/types';
import type { ExecutionProvider } from './runtime/session';

export const CONFIG_FILE = 'backdoor-lens.json';

export interface BackdoorLensConfig {
  data?: string;
  labels?: string;
  dataKind?: 'clean' | 'mixed';
  preprocess?: PreprocessSpec;
  methods?: string[];
  threshold?: number;
  methodOptions?: Record<string, Record<string, unknown>>;
  numClasses?: number;
  target?: number;
  arch?: string;
  seed?: number;
  batchSize?: number;
  executionProvider?: ExecutionProvider;
  threads?: number;
  timeLimitSeconds?: number;
  limits?: { maxModelBytes?: number; maxTensorElements?: number; maxMemoryMB?: number };
}

export interface LoadedConfig {
  path: string;
  config: BackdoorLensConfig;
}

let validator: ValidateFunction | undefined;
function validate(value: unknown): ErrorObject[] {
  validator ??= new Ajv({ allErrors: true, strict: false }).compile(schema);
  return validator(value) ? [] : [...(validator.errors ?? [])];
}

function describe(e: ErrorObject): string {
  const at = e.instancePath || '(top level)';
  if (e.keyword === 'additionalProperties') return `${at}: unknown setting '${(e.params as { additionalProperty: string }).additionalProperty}'`;
  if (e.keyword === 'enum') return `${at} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  return `${at} ${e.message}`;
}

export function parseConfig(path: string, text: string): BackdoorLensConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new BackdoorLensError('usage', `is not valid JSON: ${(e as Error).message}`, { file: path });
  }
  const errors = validate(value);
  if (errors.length) throw new BackdoorLensError('usage', `invalid configuration: ${errors.slice(0, 3).map(describe).join('; ')}`, { file: path });
  const config = value as BackdoorLensConfig;
  const base = dirname(path);
  const abs = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : resolve(base, p));
  return { ...config, data: abs(config.data), labels: abs(config.labels) };
}

export function readConfig(path: string): LoadedConfig {
  return { path, config: parseConfig(path, readRegularFile(path, { code: 'usage', what: 'configuration', checkSize: (size) => {
    if (size > 1 << 20) throw new BackdoorLensError('usage', `is ${size} bytes; a backdoor-lens.json is at most 1 MiB`, { file: path });
  } }).toString('utf8')) };
}

/** The config next to the model, else the one at the workspace root, else none. */
export function findConfig(modelPath: string, workspaceRoot?: string): LoadedConfig | undefined {
  const candidates = [join(dirname(resolve(modelPath)), CONFIG_FILE), ...(workspaceRoot ? [join(resolve(workspaceRoot), CONFIG_FILE)] : [])];
  const found = candidates.find((c) => existsSync(c));
  return found ? readConfig(found) : undefined;
}
