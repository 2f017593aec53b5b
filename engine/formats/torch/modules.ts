/**
 * Whole pickled models (torch.save(model)) read as data. The pickle builds each module by NEWOBJ
 * of its class and BUILD with the module's __dict__; for the allowlisted torch.nn and torchvision
 * classes below that becomes an inert record (PyObject with the class name and the __dict__), never
 * an instance. This file turns those records into a module tree: class, hyperparameters (stride,
 * padding, eps, …), parameters, buffers and children, and the state_dict torch would give.
 *
 * Only classes Backdoor Lens can build a graph for are allowlisted; every other class (the user's
 * `__main__.Net`, a torch.nn layer we do not convert) stays outside the allowlist and is refused
 * by classify.ts as before (BL031, or BL030 for anything that is not a plausible model class).
 */
import { BackdoorLensError } from '../../errors';
import type { Tensor } from '../../tensor';
import { GlobalArgumentError, type SafeGlobal } from '../pickle/globals';
import { PyDict, PyGlobal, PyObject, PySet, PyTensor, describe, type PyValue } from '../pickle/values';

/** Allowlisted module classes by module: each is read as a record of its __dict__. */
const MODULE_CLASSES: Record<string, readonly string[]> = {
  'torch.nn.modules.container': ['Sequential'],
  'torch.nn.modules.conv': ['Conv2d'],
  'torch.nn.modules.batchnorm': ['BatchNorm1d', 'BatchNorm2d'],
  'torch.nn.modules.activation': ['ReLU', 'ReLU6', 'LeakyReLU', 'ELU', 'Sigmoid', 'Tanh', 'Hardsigmoid', 'Hardswish', 'SiLU', 'GELU', 'MultiheadAttention'],
  'torch.nn.modules.normalization': ['LayerNorm'],
  'torch.nn.modules.pooling': ['MaxPool2d', 'AvgPool2d', 'AdaptiveAvgPool2d'],
  'torch.nn.modules.flatten': ['Flatten'],
  'torch.nn.modules.linear': ['Linear', 'Identity', 'NonDynamicallyQuantizableLinear'],
  'torch.nn.modules.dropout': ['Dropout', 'Dropout1d', 'Dropout2d', 'AlphaDropout'],
  'torchvision.models.resnet': ['ResNet', 'BasicBlock', 'Bottleneck'],
  'torchvision.models.vgg': ['VGG'],
  'torchvision.models.mobilenetv2': ['MobileNetV2', 'InvertedResidual', 'ConvBNReLU', 'ConvBNActivation'],
  'torchvision.models.mobilenetv3': ['MobileNetV3', 'InvertedResidual'],
  'torchvision.models.densenet': ['DenseNet', '_DenseBlock', '_DenseLayer', '_Transition'],
  'torchvision.models.inception': ['Inception3', 'BasicConv2d', 'InceptionA', 'InceptionB', 'InceptionC', 'InceptionD', 'InceptionE', 'InceptionAux'],
  'torchvision.models.squeezenet': ['SqueezeNet', 'Fire'],
  'torchvision.models.googlenet': ['GoogLeNet', 'BasicConv2d', 'Inception', 'InceptionAux'],
  'torchvision.models.shufflenetv2': ['ShuffleNetV2', 'InvertedResidual'],
  'torchvision.models.regnet': ['RegNet', 'SimpleStemIN', 'AnyStage', 'ResBottleneckBlock', 'BottleneckTransform'],
  'torchvision.models.efficientnet': ['EfficientNet', 'MBConv', 'FusedMBConv'],
  'torchvision.models.convnext': ['ConvNeXt', 'CNBlock', 'LayerNorm2d'],
  'torchvision.models.vision_transformer': ['VisionTransformer', 'Encoder', 'EncoderBlock', 'MLPBlock'],
  'torchvision.models.swin_transformer': ['SwinTransformer', 'SwinTransformerBlock', 'ShiftedWindowAttention', 'PatchMerging', 'SwinTransformerBlockV2', 'ShiftedWindowAttentionV2', 'PatchMergingV2'],
  'torchvision.ops.misc': ['Conv2dNormActivation', 'ConvNormActivation', 'SqueezeExcitation', 'Permute', 'MLP'],
  'torchvision.ops.stochastic_depth': ['StochasticDepth'],
};

/** Qualified name → the class's own name ('torch.nn.modules.conv.Conv2d' → 'Conv2d'). */
export const moduleClasses: ReadonlyMap<string, string> = new Map(
  Object.entries(MODULE_CLASSES).flatMap(([module, names]) => names.map((n) => [`${module}.${n}`, n] as [string, string])),
);

/** torchvision's Sequential subclasses (a conv, a norm, an activation): their forward is Sequential's. */
export const SEQUENTIAL_KINDS = new Set(['Sequential', 'Conv2dNormActivation', 'ConvNormActivation', 'ConvBNReLU', 'ConvBNActivation', '_Transition', 'SimpleStemIN', 'AnyStage', 'BottleneckTransform', 'MLPBlock', 'MLP']);

/**
 * Adds the module classes to a pickle allowlist. Calling one makes an inert record; the arguments
 * are kept so the tree reader can refuse what torch.save never writes (a module built with arguments).
 */
export function addModuleClasses(allowlist: Map<string, SafeGlobal>): void {
  for (const q of moduleClasses.keys()) allowlist.set(q, { call: (args) => new PyObject(q, args) });
  allowlist.set('functools.partial', { call: partialOfClass });
}

/**
 * functools.partial(cls, …): torchvision models keep their norm_layer factory in their __dict__
 * (ViT's and Swin's partial(nn.LayerNorm, eps=1e-6)), so a whole pickled model holds one. Making a
 * partial calls nothing; its function is a global the pickle names on its own, so any function
 * outside the allowlist (os.system, …) is already a finding. Only a global is taken as the function;
 * the record stays inert, and a converter never calls it.
 */
function partialOfClass(args: readonly PyValue[]): PyValue {
  if (args.length !== 1 || !(args[0] instanceof PyGlobal)) {
    throw new GlobalArgumentError(`functools.partial of ${args.map((a) => describe(a)).join(', ') || 'nothing'}; a whole model's partial wraps one class`);
  }
  return new PyObject('functools.partial', args);
}

/** A module of a whole pickled model. */
export interface ModuleNode {
  /** Qualified class name: 'torch.nn.modules.conv.Conv2d'. */
  cls: string;
  /** The class's own name: 'Conv2d'. */
  kind: string;
  /** Dotted path from the root; '' for the root. */
  path: string;
  /** The __dict__ entries that are not torch's bookkeeping: the hyperparameters (stride, padding, eps, …). */
  attrs: ReadonlyMap<string, PyValue>;
  /** Parameters that are set (a None bias is absent). */
  params: ReadonlyMap<string, Tensor>;
  /** Buffers that are set and saved in the state_dict (non-persistent ones are left out). */
  buffers: ReadonlyMap<string, Tensor>;
  children: readonly { name: string; module: ModuleNode }[];
  /** Whether it was saved in training mode (it is run as model.eval() would run it). */
  training: boolean;
}

/** torch.nn.Module's own __dict__ entries; everything else is the class's. */
const BOOKKEEPING = new Set([
  'training', '_parameters', '_buffers', '_non_persistent_buffers_set', '_modules', '_is_full_backward_hook', '_compiled_call_impl',
  '_backward_hooks', '_backward_pre_hooks', '_state_dict_hooks', '_state_dict_pre_hooks', '_load_state_dict_pre_hooks', '_load_state_dict_post_hooks',
  '_forward_hooks', '_forward_pre_hooks', '_forward_hooks_with_kwargs', '_forward_pre_hooks_with_kwargs', '_forward_hooks_always_called',
]);

/** Hooks that change what forward() computes: a model that has them is not what its layers say. */
const FORWARD_HOOKS = ['_forward_hooks', '_forward_pre_hooks'];

const MAX_DEPTH = 100;
/** Modules in all: a module shared by two parents is read under each, so sharing cannot multiply the tree unboundedly. */
const MAX_MODULES = 200_000;

interface ReadContext {
  file: string;
  count: number;
}

function fail(file: string, where: string, what: string): never {
  throw new BackdoorLensError('unsupported-model', `the whole pickled model's ${where} ${what}`, { file });
}

function label(path: string): string {
  return path === '' ? 'root module' : `module '${path}'`;
}

function entries(file: string, where: string, value: PyValue | undefined): [string, PyValue][] {
  if (value === undefined || value === null) return [];
  if (!(value instanceof PyDict)) fail(file, where, `is ${describe(value)}, not a dict`);
  return [...value.entries].map(([k, v]) => {
    if (typeof k !== 'string') fail(file, where, `has the key ${describe(k)}, not a name`);
    return [k, v];
  });
}

function tensorEntries(file: string, where: string, value: PyValue | undefined): Map<string, Tensor | null> {
  const out = new Map<string, Tensor | null>();
  for (const [name, v] of entries(file, where, value)) {
    if (v === null) out.set(name, null);
    else if (v instanceof PyTensor) out.set(name, v.tensor);
    else fail(file, `${where} '${name}'`, `is ${describe(v)}, not a tensor`);
  }
  return out;
}

function readModule(ctx: ReadContext, value: PyObject, path: string, ancestors: Set<PyObject>): ModuleNode {
  const file = ctx.file;
  const where = label(path);
  if (++ctx.count > MAX_MODULES) fail(file, where, `is past ${MAX_MODULES} modules (submodules shared by several parents count once per parent)`);
  const kind = moduleClasses.get(value.origin)!;
  if (value.args.length) fail(file, where, `(${value.origin}) is built with arguments ${describe(value.args[0])}, which torch.save never writes`);
  if (ancestors.has(value)) fail(file, where, 'contains itself');
  if (ancestors.size >= MAX_DEPTH) fail(file, where, `is nested more than ${MAX_DEPTH} modules deep`);
  const state = value.state;
  if (!(state instanceof PyDict)) fail(file, where, `(${kind}) has no state: the pickle never sets its attributes`);
  const dict = new Map(entries(file, `${where}'s state`, state));
  for (const hooks of FORWARD_HOOKS) {
    const h = dict.get(hooks);
    if (h instanceof PyDict && h.entries.size) fail(file, where, `has ${hooks.slice(1).replace(/_/g, ' ')}, code that changes what the model computes`);
  }
  const nonPersistent = dict.get('_non_persistent_buffers_set');
  const skip = new Set(nonPersistent instanceof PySet ? nonPersistent.items.filter((x): x is string => typeof x === 'string') : []);
  const params = new Map<string, Tensor>();
  for (const [k, t] of tensorEntries(file, `${where}'s parameter`, dict.get('_parameters'))) if (t) params.set(k, t);
  const buffers = new Map<string, Tensor>();
  for (const [k, t] of tensorEntries(file, `${where}'s buffer`, dict.get('_buffers'))) if (t && !skip.has(k)) buffers.set(k, t);
  const inner = new Set(ancestors).add(value);
  const children: { name: string; module: ModuleNode }[] = [];
  for (const [name, child] of entries(file, `${where}'s submodules`, dict.get('_modules'))) {
    if (child === null) continue;
    const childPath = path === '' ? name : `${path}.${name}`;
    if (!(child instanceof PyObject) || !moduleClasses.has(child.origin)) fail(file, label(childPath), `is ${describe(child)}, not a module`);
    children.push({ name, module: readModule(ctx, child, childPath, inner) });
  }
  const attrs = new Map([...dict].filter(([k]) => !BOOKKEEPING.has(k)));
  return { cls: value.origin, kind, path, attrs, params, buffers, children, training: dict.get('training') === true };
}

/** Whether a pickled value is a module of an allowlisted class. */
export function isModuleRecord(value: PyValue | undefined): value is PyObject {
  return value instanceof PyObject && moduleClasses.has(value.origin);
}

/** Entries training scripts keep a whole model under, beside the epoch and the optimizer. */
const MODEL_KEYS = ['model', 'net', 'network', 'module'];

/** The pickled module a checkpoint holds (the object itself, or a training checkpoint's 'model' entry), if any. */
export function moduleRecordIn(root: PyValue): PyObject | undefined {
  if (isModuleRecord(root)) return root;
  if (root instanceof PyDict) for (const key of MODEL_KEYS) if (isModuleRecord(root.get(key))) return root.get(key) as PyObject;
  return undefined;
}

/** The module tree of a pickled module, checked: modules all the way down, tensors where torch keeps them. */
export function moduleTree(file: string, record: PyObject): ModuleNode {
  return readModule({ file, count: 0 }, record, '', new Set());
}

/** The state_dict torch would give: parameters, then persistent buffers, then each child's, under dotted keys. */
export function stateDictOf(tree: ModuleNode): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const walk = (m: ModuleNode, prefix: string) => {
    for (const [k, t] of m.params) out.set(prefix + k, t);
    for (const [k, t] of m.buffers) out.set(prefix + k, t);
    for (const c of m.children) walk(c.module, `${prefix}${c.name}.`);
  };
  walk(tree, '');
  return out;
}

/** Every module of the tree, the root first, children in order (a module shared by two parents comes twice). */
export function modulesOf(tree: ModuleNode): ModuleNode[] {
  const out: ModuleNode[] = [];
  const walk = (m: ModuleNode) => {
    out.push(m);
    for (const c of m.children) walk(c.module);
  };
  walk(tree);
  return out;
}

/** The module at a dotted path, if any. */
export function moduleAt(tree: ModuleNode, path: string): ModuleNode | undefined {
  if (path === '') return tree;
  let m: ModuleNode | undefined = tree;
  for (const part of path.split('.')) {
    m = m?.children.find((c) => c.name === part)?.module;
    if (!m) return undefined;
  }
  return m;
}
