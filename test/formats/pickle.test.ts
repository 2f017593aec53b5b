import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { UnsafeCheckpointError } from '../../engine';
import { baseAllowlist, classify } from '../../engine/formats/pickle/globals';
import { PickleError, PickleMachine, type PickleOptions } from '../../engine/formats/pickle/machine';
import { PyBytes, PyDict, PyList, PySet, PyTuple, type PyValue } from '../../engine/formats/pickle/values';
import { readTorchObject } from '../../engine/formats/torch/checkpoint';
import { pickleBytes, picklesDir, storedZip, zipEntries } from './helpers';

/** The JSON form tools/fixtures/pickles.py writes for plain data (plain.json). */
function canonical(v: PyValue): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? v : { float: v };
  if (typeof v === 'bigint') return { int: String(v) };
  if (v instanceof PyBytes) return { bytes: Buffer.from(v.data).toString('hex') };
  if (v instanceof PyList) return { list: v.items.map(canonical) };
  if (v instanceof PyTuple) return { tuple: v.items.map(canonical) };
  if (v instanceof PySet) return { [v.frozen ? 'frozenset' : 'set']: v.items.map(canonical).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) };
  if (v instanceof PyDict) return { dict: [...v.entries].map(([k, x]) => [canonical(k), canonical(x)]) };
  throw new Error(`not plain data: ${String(v)}`);
}

const options = (extra: Partial<PickleOptions> = {}): PickleOptions => ({ allowlist: baseAllowlist(), ...extra });
const run = (bytes: Uint8Array, extra: Partial<PickleOptions> = {}) => {
  const m = new PickleMachine(bytes, options(extra));
  return { value: m.run(), machine: m };
};
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const str = (s: string) => pickleBytes('X', u32(Buffer.byteLength(s)), Buffer.from(s, 'utf8'));

describe('pickle interpreter: plain data in every protocol', () => {
  const expected = JSON.parse(readFileSync(join(picklesDir, 'plain.json'), 'utf8'));
  for (let p = 0; p <= 5; p++) {
    test(`protocol ${p} builds the same values Python pickled`, () => {
      const { value, machine } = run(readFileSync(join(picklesDir, `plain-p${p}.pkl`)));
      assert.deepEqual(canonical(value), expected);
      assert.deepEqual(machine.uses, [], 'plain data needs no global outside the allowlist');
    });
  }

  test('memo entries are shared, not copied (the same list twice)', () => {
    const { value } = run(readFileSync(join(picklesDir, 'plain-p2.pkl')));
    const shared = (value as PyDict).get('shared') as PyList;
    assert.equal(shared.items[0], shared.items[1]);
  });
});

describe('pickle interpreter: malformed and hostile streams fail cleanly and bounded', () => {
  const fails = (bytes: Uint8Array, pattern: RegExp, extra: Partial<PickleOptions> = {}) =>
    assert.throws(() => run(bytes, extra), (e: unknown) => e instanceof PickleError && pattern.test(e.message));

  test('reading a memo entry never stored', () => fails(pickleBytes('\x80\x02h\x07.'), /memo entry 7, which was never stored/));
  test('a string longer than the stream', () => fails(pickleBytes('\x80\x02X', u32(100), 'abc'), /truncated/));
  test('a BINUNICODE8 length of 2^40 fails before any allocation', () => fails(pickleBytes('\x8d', [0, 0, 0, 0, 0, 1, 0, 0]), /longer than the pickle/));
  test('a LONG4 of a billion bytes is over the integer limit', () => fails(pickleBytes('\x8b', u32(1e9)), /over the limit/));
  test('marks nested past the limit', () => fails(pickleBytes('('.repeat(20_000)), /nests marks deeper than 10000/));
  test('more values than the limit', () => fails(pickleBytes(']'.repeat(100), '.'), /more than 50 values/, { limits: { maxValues: 50 } }));
  test('a megabyte of EMPTY_DICTs stops at the default value bound (65 536 + one per two bytes)', () => fails(pickleBytes('}'.repeat(1 << 20)), /more than 589824 values/));
  test('an unknown opcode', () => fails(pickleBytes('\x80\x02\xff'), /unknown pickle opcode 0xff/));
  test('STOP inside an open mark', () => fails(pickleBytes('(K\x01.'), /stops inside an open mark/));
  test('a persistent id where none is expected', () => fails(pickleBytes('K\x01Q.'), /persistent id/));
  test('an allowlisted global called with arguments a real one rejects', () => fails(pickleBytes('ccollections\nOrderedDict\nK\x05\x85R.'), /OrderedDict\(\) takes a sequence of pairs/));
  test('calling a plain value', () => fails(pickleBytes('K\x01)R.'), /calls 1, which cannot be called/));
});

describe('pickle interpreter: globals are named, never imported', () => {
  test('classification: allowlisted, dangerous families, model classes', () => {
    const allow = baseAllowlist();
    assert.equal(classify('collections.OrderedDict', allow).kind, 'safe');
    assert.equal(classify('torch.FloatStorage', allow).kind, 'safe');
    for (const q of ['os.system', 'posix.system', 'nt.system', 'subprocess.Popen', 'builtins.eval', 'builtins.exec', 'builtins.getattr', 'builtins.__import__', 'builtins.open', 'builtins.compile', 'runpy._run_code', 'pty.spawn', 'socket.socket', 'shutil.rmtree', 'webbrowser.open', 'sys.modules', 'importlib.import_module', 'pickle.loads', '_pickle.loads', 'torch.load', 'numpy.load', 'operator.attrgetter', 'collections.OrderedDict.__init__.__globals__']) {
      assert.equal(classify(q, allow).kind, 'dangerous', q);
    }
    // Issue 15: each of these runs a command under CPython's pickle, and none is "not known to be dangerous".
    for (const q of ['_osx_support._read_output', 'pydoc.pipepager', 'uuid._get_command_stdout', '_frozen_importlib._gcd_import', '_operator.methodcaller', '_operator.attrgetter', 'pathlib.Path.write_text', 'torch.fx.graph_module._forward_from_src', 'torch.utils.collect_env.run', 'requests.api.get']) {
      assert.equal(classify(q, allow).kind, 'dangerous', q);
    }
    // Any other standard-library or tool name is an error too, harmless-looking or not.
    for (const q of ['builtins.print', 'posixpath.join', 'numpy.random.rand', 'collections.namedtuple', 'torch.nn.functional.relu', 'torch.nn.modules.module._addindent', 'mymodels.build_model']) {
      assert.equal(classify(q, allow).kind, 'dangerous', q);
    }
    // Only classes a pickled model plausibly names stay warnings: the user's own, and torch.nn / torchvision's.
    for (const q of ['__main__.Net', 'models.resnet.ResNet', 'torch.nn.modules.linear.Linear', 'torchvision.models.resnet.ResNet']) assert.equal(classify(q, allow).kind, 'model-class', q);
    // Plain data a training checkpoint carries loads as inert objects.
    for (const q of ['argparse.Namespace', 'datetime.datetime', 'pathlib.PosixPath', 'copyreg._reconstructor']) assert.equal(classify(q, allow).kind, 'safe', q);
  });

  test('a STACK_GLOBAL whose name is not a plain string is flagged as dangerous', () => {
    const { machine } = run(pickleBytes('K\x01', str('system'), '\x93N\x85R.'));
    assert.equal(machine.uses.length, 1);
    assert.equal(machine.uses[0].danger, 'dangerous');
    assert.match(machine.uses[0].via, /computed/);
  });

  test('getattr on an allowlisted class reaching a dunder attribute is dangerous', () => {
    const bytes = pickleBytes('cbuiltins\ngetattr\n', 'ccollections\nOrderedDict\n', str('__init__'), '\x86R.');
    const { machine } = run(bytes);
    const names = machine.uses.map((u) => `${u.qualified}:${u.danger}`);
    assert.deepEqual(names, ['builtins.getattr:dangerous', 'collections.OrderedDict.__init__:dangerous']);
  });

  test('the first call of each flagged global is recorded with its arguments', () => {
    const { machine } = run(pickleBytes('\x80\x02cos\nsystem\nq\x01', str("echo 'hi'"), '\x85R0h\x01', str('second'), '\x85R.'));
    assert.equal(machine.uses.length, 1);
    assert.equal(machine.uses[0].call, `os.system("echo 'hi'")`);
    assert.equal(machine.uses[0].callOpcode, 'REDUCE');
  });

  test('a dangerous call made before the pickle breaks still refuses the file', () => {
    const clean = zipEntries(join(picklesDir, 'clean.pt'));
    const broken = pickleBytes('\x80\x02cos\nsystem\n', str('touch /tmp/never'), '\x85R', 'h\x63');
    const zip = storedZip(clean.map(([n, d]) => [n, n.endsWith('data.pkl') ? broken : d]));
    assert.throws(
      () => readTorchObject(zip, { path: 'broken.pt', sha256: '0'.repeat(64), maxTensorElements: 1e6 }),
      (e: unknown) => e instanceof UnsafeCheckpointError && e.dangerous && /unreadable/.test(e.message) && e.findings[0].location?.symbol === 'os.system',
    );
  });
});
