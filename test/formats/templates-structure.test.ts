/**
 * Weights-only files whose key names differ from the templates' (fixtures/templates/structure,
 * tools/fixtures/templates_structure.py): matched by structure without --arch, the renamings named
 * in the report, the file's own keys kept for writing weights back; and the input size taken from
 * the data when the network pools adaptively, never when its head fixes the size.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadModel, loadModelForData, type LoadedModel } from '../../engine';
import { cli } from '../helpers';
import { logitsOf, maxAbsDiff, readNpzArrays, templatesDir } from './helpers';

const dir = join(templatesDir, 'structure');
const file = (f: string) => join(dir, f);

interface StructureCase {
  file: string;
  references: Record<string, string>;
  architecture: string;
  renamed: string;
}

const cases = (JSON.parse(readFileSync(file('manifest.json'), 'utf8')) as { cases: StructureCase[] }).cases;

async function assertPyTorchLogits(model: LoadedModel, reference: string): Promise<void> {
  const ref = readNpzArrays(file(reference));
  const x = ref.get('x')!;
  assert.deepEqual(model.onnx.inputs()[0].dims.slice(2), x.dims.slice(2));
  const diff = maxAbsDiff(await logitsOf(model, x), ref.get('logits')!.data as Float32Array);
  assert.ok(diff <= 1e-4, `max |Δlogit| = ${diff}`);
}

describe('templates matched by structure when key names differ', () => {
  for (const c of cases) {
    test(`${c.file} loads without --arch as ${c.architecture} and gives PyTorch's logits on its 32×32 reference images`, async () => {
      const model = await loadModelForData(file(c.file), {}, { path: file(c.references['32']) });
      assert.equal(model.architecture, c.architecture);
      assert.ok(model.notes?.[0].includes(c.renamed), `notes: ${model.notes}`);
      await assertPyTorchLogits(model, c.references['32']);
    });
  }

  test('flat layers.0…layers.7 become layer1.0…layer4.1; shortcut and linear are named in the report; the file keys are kept', async () => {
    const model = await loadModel(file('resnet18-flat-layers.pt'));
    assert.match(model.notes![0], /^resnet18 template, matched by structure: blocks 'layers\.0'…'layers\.7' read as 4 stages of 2, 2, 2, 2 blocks \('layer1\.0'…'layer4\.1'\); head 'linear', shortcuts 'shortcut'$/);
    assert.equal(model.sourceKeys!.get('layer2.0.shortcut.0.weight'), 'layers.2.shortcut.0.weight');
    assert.equal(model.sourceKeys!.get('layer4.1.bn2.running_var'), 'layers.7.bn2.running_var');
    assert.equal(model.sourceKeys!.get('linear.weight'), 'linear.weight');
  });

  test("a {'model': …} wrapper, 'module.', stage lists, named downsample parts and a 'classifier' head", async () => {
    const model = await loadModel(file('resnet-staged-wrapped.pt'));
    assert.match(model.notes![0], /'module\.' prefix removed; stages 'layers\.0'…'layers\.3' read as 'layer1'…'layer4'; shortcut parts 'conv' \/ 'bn' read as '0' \/ '1'; head 'classifier', shortcuts 'downsample'$/);
    assert.equal(model.sourceKeys!.get('layer2.0.downsample.0.weight'), 'module.layers.1.0.downsample.conv.weight');
    assert.equal(model.sourceKeys!.get('layer1.1.conv2.weight'), 'module.layers.0.1.conv2.weight');
  });

  test('the file key names are tried first: a layout the templates know is matched by key names', async () => {
    const model = await loadModel(join(templatesDir, 'resnet18-cifar.safetensors'));
    assert.match(model.notes![0], /^resnet18 template, matched by key names; head 'linear', shortcuts 'shortcut'$/);
  });

  test('--arch works on renamed keys too, and a wrong --arch still lists what does not fit', async () => {
    const ok = await loadModel(file('resnet18-flat-layers.pt'), { arch: 'resnet18' });
    assert.equal(ok.architecture, 'resnet18');
    await assert.rejects(loadModel(file('resnet18-flat-layers.pt'), { arch: 'resnet34' }), /do not fit --arch resnet34: missing keys: layer1\.2\.conv1\.weight/);
  });
});

describe('input size from the data for size-agnostic networks', () => {
  test('28×28 data on the fully convolutional CIFAR ResNet: built at 28×28, PyTorch logits, said in the notes', async () => {
    const model = await loadModelForData(file('resnet18-flat-layers.pt'), {}, { path: file('resnet18-flat-layers-at-28.npz') });
    assert.equal(model.sizeAgnostic, true);
    assert.equal(model.notes![1], 'input 28×28 from the data (the network pools adaptively; --size overrides)');
    await assertPyTorchLogits(model, 'resnet18-flat-layers-at-28.npz');
  });

  test('a torchvision ResNet-18 (ImageNet stem) with 32×32 data needs no --size', async () => {
    const model = await loadModelForData(join(templatesDir, 'resnet18-imagenet.pt'), {}, { path: file('resnet18-imagenet-at-32.npz') });
    assert.deepEqual(model.onnx.inputs()[0].dims, ['N', 3, 32, 32]);
    await assertPyTorchLogits(model, 'resnet18-imagenet-at-32.npz');
  });

  test('--size wins over the data, and without data the template default stays', async () => {
    const given = await loadModelForData(file('resnet18-flat-layers.pt'), { inputSize: { height: 40, width: 40 } }, { path: file('resnet18-flat-layers-at-28.npz') });
    assert.deepEqual(given.onnx.inputs()[0].dims, ['N', 3, 40, 40]);
    assert.equal(given.notes![1], 'input 40×40 from --size');
    const alone = await loadModelForData(file('resnet18-flat-layers.pt'), {});
    assert.deepEqual(alone.onnx.inputs()[0].dims, ['N', 3, 32, 32]);
    assert.equal(alone.notes![1], "input 32×32, the template's default (the network pools adaptively: data of another size sets it)");
  });

  test('a network whose head fixes the size keeps it: the data loader then reports the mismatch', async () => {
    const cnn = join(templatesDir, 'plain-cnn.safetensors');
    const model = await loadModelForData(cnn, {}, { path: file('resnet18-flat-layers-at-28.npz') });
    assert.equal(model.sizeAgnostic, false);
    assert.deepEqual(model.onnx.inputs()[0].dims, ['N', 3, 32, 32]);
    const r = await cli('eval', cnn, '--data', file('resnet18-flat-layers-at-28.npz'));
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /images are 28×28 but the model expects 32×32; pass --resize/);
  });

  test('CLI: eval on 28×28 and 32×32 data without --size reproduces PyTorch (accuracy against its argmax labels is 1)', async () => {
    for (const [model, data] of [
      [file('resnet18-flat-layers.pt'), file('resnet18-flat-layers-at-28.npz')],
      [join(templatesDir, 'resnet18-imagenet.pt'), file('resnet18-imagenet-at-32.npz')],
    ]) {
      const r = await cli('eval', model, '--data', data, '--json');
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).accuracy, 1);
    }
  });

  test('CLI: the scan report says where the input size came from', async () => {
    const r = await cli('scan', file('resnet18-flat-layers.pt'), '--data', file('resnet18-flat-layers-at-28.npz'), '--methods', 'clp', '--json');
    assert.ok(r.exitCode === 0 || r.exitCode === 1, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.deepEqual(report.model.input.dims, ['N', 3, 28, 28]);
    assert.deepEqual(report.model.notes, [
      "resnet18 template, matched by structure: blocks 'layers.0'…'layers.7' read as 4 stages of 2, 2, 2, 2 blocks ('layer1.0'…'layer4.1'); head 'linear', shortcuts 'shortcut'",
      'input 28×28 from the data (the network pools adaptively; --size overrides)',
    ]);
  });
});
