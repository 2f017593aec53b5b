/** Command-line options shared by the subcommands, merged over backdoor-lens.json. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BackdoorLensError, checkMethodOptions, findConfig, readConfig, executionProviders, defaultTimeLimitSeconds, type BackdoorLensConfig, type PreprocessSpec, type ExecutionProvider, type JobLimits, type LoadedConfig, type SessionConfig } from '../engine';

export const commonOptions = {
  json: { type: 'boolean' },
  config: { type: 'string' },
  provider: { type: 'string' },
  threads: { type: 'string' },
  arch: { type: 'string' },
  'num-classes': { type: 'string' },
  data: { type: 'string' },
  labels: { type: 'string' },
  'data-kind': { type: 'string' },
  layout: { type: 'string' },
  size: { type: 'string' },
  channels: { type: 'string' },
  scale: { type: 'string' },
  mean: { type: 'string' },
  std: { type: 'string' },
  resize: { type: 'boolean' },
  'batch-size': { type: 'string' },
  seed: { type: 'string' },
  'max-model-mb': { type: 'string' },
  'max-tensor-elements': { type: 'string' },
  'time-limit': { type: 'string' },
  'max-memory': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export class UsageError extends BackdoorLensError {
  constructor(message: string) {
    super('usage', message);
  }
}

export function parse(args: string[], options: ParseArgsConfig['options']): { values: OptionValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options: { ...commonOptions, ...options }, allowPositionals: true, strict: true });
    return { values: values as OptionValues, positionals };
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

export function intOption(values: OptionValues, name: string, min = 0): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
}

/** A number > 0 (sizes, limits). */
export function positiveOption(values: OptionValues, name: string): number | undefined {
  const n = numberOption(values, name);
  if (n !== undefined && n <= 0) throw new UsageError(`--${name} must be positive, got '${values[name]}'`);
  return n;
}

export function numberOption(values: OptionValues, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  return n;
}

function numberList(values: OptionValues, name: string): number[] | undefined {
  const v = values[name];
  if (typeof v !== 'string') return undefined;
  const list = v.split(',').map(Number);
  if (list.some((x) => !Number.isFinite(x))) throw new UsageError(`--${name} must be comma-separated numbers, got '${v}'`);
  return list;
}

/**
 * A command's settings: the session's configuration (backdoor-lens.json's shape, flags over the
 * file), the file it came from, and the job's limits.
 */
export interface Settings extends SessionConfig {
  /** The backdoor-lens.json that was read, if any. */
  file?: LoadedConfig;
  executionProvider: ExecutionProvider;
  dataKind: 'clean' | 'mixed';
  preprocess: PreprocessSpec;
  seed: number;
  /** The job's limits: --time-limit over timeLimitSeconds over the default (0: none); --max-memory over limits.maxMemoryMB. */
  job: JobLimits;
}

/** Flags win over the config file; the config is the one next to the model or in the working folder. */
export function settingsFor(modelPath: string | undefined, values: OptionValues): Settings {
  const loaded = typeof values.config === 'string' ? readConfig(values.config) : modelPath ? findConfig(modelPath, process.cwd()) : undefined;
  const c: BackdoorLensConfig = loaded?.config ?? {};
  if (loaded) checkMethodOptions(c.methodOptions, `methodOptions in ${loaded.path}`);
  const provider = (values.provider as string | undefined) ?? c.executionProvider ?? 'cpu';
  if (!executionProviders.includes(provider as ExecutionProvider)) throw new UsageError(`--provider must be one of ${executionProviders.join(', ')}, got '${provider}'`);
  const dataKind = (values['data-kind'] as string | undefined) ?? c.dataKind ?? 'clean';
  if (dataKind !== 'clean' && dataKind !== 'mixed') throw new UsageError(`--data-kind must be clean or mixed, got '${dataKind}'`);
  const preprocess: PreprocessSpec = { ...c.preprocess };
  const layout = values.layout as string | undefined;
  if (layout !== undefined) {
    if (layout !== 'NCHW' && layout !== 'NHWC') throw new UsageError(`--layout must be NCHW or NHWC, got '${layout}'`);
    preprocess.layout = layout;
  }
  if (typeof values.size === 'string') {
    const m = /^(\d+)x(\d+)$/.exec(values.size);
    if (!m) throw new UsageError(`--size must look like 32x32, got '${values.size}'`);
    preprocess.height = Number(m[1]);
    preprocess.width = Number(m[2]);
  }
  preprocess.channels = intOption(values, 'channels', 1) ?? preprocess.channels;
  preprocess.scale = numberOption(values, 'scale') ?? preprocess.scale;
  preprocess.mean = numberList(values, 'mean') ?? preprocess.mean;
  preprocess.std = numberList(values, 'std') ?? preprocess.std;
  if (values.resize) preprocess.resize = true;
  const maxModelMB = positiveOption(values, 'max-model-mb');
  const limits = {
    maxModelBytes: maxModelMB !== undefined ? Math.ceil(maxModelMB * 2 ** 20) : c.limits?.maxModelBytes,
    maxTensorElements: intOption(values, 'max-tensor-elements', 1) ?? c.limits?.maxTensorElements,
  };
  const timeLimit = numberOption(values, 'time-limit') ?? c.timeLimitSeconds ?? defaultTimeLimitSeconds;
  if (timeLimit < 0) throw new UsageError(`--time-limit must be 0 (no limit) or more seconds, got '${values['time-limit']}'`);
  const maxMemoryMB = positiveOption(values, 'max-memory') ?? c.limits?.maxMemoryMB;
  return {
    ...c,
    file: loaded,
    job: { timeLimitMs: timeLimit > 0 ? timeLimit * 1000 : undefined, maxMemoryMB },
    executionProvider: provider as ExecutionProvider,
    threads: intOption(values, 'threads') ?? c.threads,
    arch: (values.arch as string | undefined) ?? c.arch,
    numClasses: intOption(values, 'num-classes', 2) ?? c.numClasses,
    data: (values.data as string | undefined) ?? c.data,
    labels: (values.labels as string | undefined) ?? c.labels,
    dataKind,
    preprocess,
    batchSize: intOption(values, 'batch-size', 1) ?? c.batchSize,
    seed: intOption(values, 'seed') ?? c.seed ?? 0,
    limits,
  };
}

export const commonHelp = `Model and data options:
  --data PATH            clean samples: .npz (x, y), .npy, IDX images, or a folder of class subfolders
  --labels PATH          labels for .npy or IDX images (found automatically beside IDX images)
  --data-kind KIND       clean (default) or mixed (may contain poisoned samples; enables EP)
  --layout NCHW|NHWC     model input layout (default: read from the model)
  --size HxW             model input size (default: read from the model; for weights files, the
                         template's default: 32x32 CIFAR layouts, 224x224 ImageNet layouts)
  --channels N           model input channels
  --scale X              multiply raw pixel values by X (default 1/255 for uint8, 1 for float)
  --mean a,b,c --std a,b,c  per-channel normalisation after scaling
  --resize               resize images whose size differs from the model's (else an error)
  --arch NAME            architecture template for state_dict/safetensors weights (default: from
                         the keys): preactresnet18, resnet18/34/50, vgg11..vgg19[_bn], mobilenet_v2, cnn
  --num-classes K        class count, when the model does not say
  --provider P           execution provider: cpu (default), cuda, webgpu
  --threads N            onnxruntime intra-op threads (default: one per core)
  --batch-size N         inference batch size
  --seed N               random seed (default 0)
  --max-model-mb MB      refuse model files larger than MB MiB (default 2048; limits.maxModelBytes)
  --max-tensor-elements N  refuse tensors of more than N elements (default 2^28; limits.maxTensorElements)
  --time-limit S         stop after S seconds (default ${defaultTimeLimitSeconds}; 0: no limit; timeLimitSeconds)
  --max-memory MB        stop when the process uses more than MB MiB (limits.maxMemoryMB)
  --config FILE          backdoor-lens.json to use (default: next to the model, else ./backdoor-lens.json)
  --json                 print JSON instead of text`;
