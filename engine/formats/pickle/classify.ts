/**
 * How dangerous a pickle global outside the allowlist is: the one place that decides between an
 * error (BL030: loading the file would call it) and a warning (BL031: a class a model file may
 * legitimately name, which we still do not load).
 *
 * The rule is "not known safe means dangerous", with one exception. A pickle can call any function
 * it names, and standard-library and tool modules are full of functions that run commands, write
 * files or import more (_osx_support._read_output, pydoc.pipepager, uuid._get_command_stdout,
 * _operator.methodcaller, pathlib.Path.write_text, torch.fx.graph_module._forward_from_src, …): no
 * deny list keeps up with them, so every name in those modules is an error. The exception is a
 * plausible model class: a class of the user's own code (`__main__.Net`, `models.resnet.ResNet`) or
 * of the model namespaces of torch.nn and torchvision, which a whole pickled model names. Those stay
 * warnings. The torch.nn / torchvision classes Backdoor Lens builds are on the torch allowlist
 * instead (torch/modules.ts) and never reach this file.
 */
import { stdlibModules } from './stdlib-modules';

export type GlobalClass = 'safe' | 'dangerous' | 'model-class';

export interface Classification {
  kind: GlobalClass;
  /** Why, for the finding: "a standard-library function", "code execution", … */
  reason: string;
}

/** Top-level packages whose every name can run code, touch files or the network, or import more. */
const codePackages = new Set([
  'os', 'posix', 'nt', 'subprocess', '_posixsubprocess', 'sys', 'runpy', 'pty', 'socket', 'shutil', 'webbrowser',
  'importlib', 'imp', 'zipimport', 'pkgutil', 'pickle', '_pickle', 'pickletools', 'marshal', 'shelve', 'ctypes', '_ctypes',
  'code', 'codeop', 'multiprocessing', 'threading', '_thread', 'asyncio', 'signal', 'pdb', 'bdb', 'timeit', 'trace',
  'profile', 'cProfile', '_winapi', 'msvcrt', 'winreg', 'io', '_io', 'tempfile', 'glob', 'fileinput', 'types', 'gc',
  'inspect', 'sysconfig', 'distutils', 'venv', 'ensurepip', 'urllib', 'http', 'ftplib', 'smtplib', 'telnetlib', 'xmlrpc',
  'socketserver', 'ssl', 'select', 'selectors', 'mmap', 'resource', 'platform', 'site', 'builtins', 'operator',
  '_operator', 'functools', '_frozen_importlib', '_frozen_importlib_external', '_imp', 'pydoc', '_osx_support',
  '_aix_support', 'uuid', 'pathlib', 'commands', 'popen2',
  // Tools: loaders, shells, HTTP clients, serialisers.
  'dill', 'cloudpickle', 'joblib', 'setuptools', 'pkg_resources', 'pip', 'requests', 'urllib3', 'httpx', 'aiohttp',
  'urllib2', 'httplib', 'paramiko', 'pexpect', 'sh', 'plumbum', 'fabric', 'invoke', 'docker', 'IPython', 'ipykernel',
  'yaml',
]);

/** Single names that run code or reach everything else, whatever their package. */
const codeNames = new Set([
  'torch.load', 'torch.storage._load_from_bytes', 'torch.serialization.load', 'torch._load_from_bytes', 'torch.save',
  'numpy.load', 'numpy.lib.npyio.load', 'numpy.testing._private.utils.runstring', 'numpy.fromfile', 'numpy.save',
]);

/** Subtrees that reach code execution, nested unpickling or compilation. */
const codePrefixes = [
  'torch.hub', 'torch.jit', 'torch.package', 'torch.utils.cpp_extension', 'torch._dynamo', 'torch.fx', 'torch.utils.collect_env',
  'torch._inductor', 'torch.compiler', 'torch.distributed', 'torch.multiprocessing', 'torch.ops', 'torch._ops',
  'numpy.ctypeslib', 'numpy.distutils', 'numpy.f2py',
];

/**
 * Packages of the tools a checkpoint is made with. Their names are not the user's own code, so a
 * name there is dangerous unless it is a class under a model namespace below.
 */
const toolPackages = new Set([
  'torch', 'torchvision', 'torchaudio', 'torchtext', 'numpy', 'scipy', 'pandas', 'sklearn', 'matplotlib', 'PIL',
  'transformers', 'huggingface_hub', 'tensorflow', 'keras', 'jax', 'jaxlib', 'flax', 'onnx', 'onnxruntime', 'six',
  'boto3', 'botocore', 'fsspec', 'psutil', 'git', 'lightning', 'pytorch_lightning', 'accelerate', 'h5py', 'pytest',
  '_pytest', 'dask', 'distributed', 'ray', 'safetensors', 'timm', 'tqdm',
]);

/** Where torch.nn / torchvision keep the classes a whole pickled model names (torch.save(model)). */
const modelNamespaces = ['torch.nn.modules', 'torch.nn.parameter', 'torchvision.models', 'torchvision.ops', 'timm.models', 'timm.layers'];

const within = (qualified: string, prefix: string) => qualified === prefix || qualified.startsWith(`${prefix}.`);

/** A class name as Python code writes one: CapWords, not a dunder, not a function. */
function isClassName(name: string): boolean {
  return /^[A-Z][A-Za-z0-9_]*$/.test(name);
}

/** Classifies a qualified name ('os.system', 'builtins.getattr', '__main__.Net') outside the allowlist. */
export function classifyGlobal(qualified: string): Classification {
  const parts = qualified.split('.');
  const top = parts[0];
  const last = parts[parts.length - 1];
  if (codeNames.has(qualified) || codePrefixes.some((p) => within(qualified, p))) return { kind: 'dangerous', reason: 'it loads or runs code' };
  if (codePackages.has(top)) return { kind: 'dangerous', reason: `module ${top} runs commands, touches files or imports code` };
  // Dunder attributes are the classic escapes from an innocent object to code (__globals__, __subclasses__, __builtins__).
  if (parts.slice(1).some((p) => /^__\w+__$/.test(p))) return { kind: 'dangerous', reason: 'a dunder attribute, the way from an object to code' };
  if (stdlibModules.has(top)) return { kind: 'dangerous', reason: `a standard-library name (${top}) that a weights file never needs` };
  if (toolPackages.has(top)) {
    if (parts.length > 2 && isClassName(last) && modelNamespaces.some((p) => within(qualified, p))) return { kind: 'model-class', reason: `a ${top} model class` };
    return { kind: 'dangerous', reason: `a ${top} name that a weights file never needs` };
  }
  // The user's own code (or a package we do not know): a class is a plausible model, a function is code.
  if (parts.length >= 2 && isClassName(last)) {
    return { kind: 'model-class', reason: `a class of the code that saved the model (${parts.slice(0, -1).join('.')})` };
  }
  return { kind: 'dangerous', reason: 'not a class: a function the pickle would call' };
}
