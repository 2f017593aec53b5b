/**
 * Whole pickled models (torch.save(model)) and legacy-format files (fixtures/whole-models,
 * tools/fixtures/whole_models.py): read as a module tree without running the pickle, built module
 * by module, PyTorch's logits reproduced; the template named when it builds the same graph; the
 * script's own classes still refused (BL031), code in a whole model still refused (BL030).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BackdoorLensError, loadModel, loadModelForData, UnsafeCheckpointError, type LoadedModel } from '../../engine';
import { GradientSession } from '../../engine/autodiff';
import { Runtime } from '../../engine/runtime';
import { cosineSimilarity, maxRelativeError } from '../autodiff/helpers';
import { readWeights } from '../../engine/formats';
import { attrInt } from '../../engine/graph/attributes';
import { inferShapes } from '../../engine/graph/shapes';
import { readTorchObject } from '../../engine/formats/torch/checkpoint';
import { moduleRecordIn, moduleTree, stateDictOf } from '../../engine/formats/torch/modules';
import { PyDict, PyTensor } from '../../engine/formats/pickle/values';
import { cli, fixtures, tempDir } from '../helpers';
import { logitsOf, maxAbsDiff, patchBytes, pickleBytes, picklesDir, readNpzArrays, storedZip, zipEntries } from './helpers';

const dir = join(fixtures, 'whole-models');
const file = (f: string) => join(dir, f);

interface WholeCase {
  file: string;
  reference: string;
  format: 'zip' | 'legacy';
  cls: string | null;
  built: 'template' | 'modules' | 'sequential';
  architecture: string;
}

const cases = (JSON.parse(readFileSync(file('manifest.json'), 'utf8')) as { cases: WholeCase[] }).cases;

async function assertPyTorchLogits(model: LoadedModel, reference: string): Promise<void> {
  const ref = readNpzArrays(file(reference));
  const x = ref.get('x')!;
  assert.deepEqual(model.onnx.inputs()[0].dims.slice(1), x.dims.slice(1));
  const diff = maxAbsDiff(await logitsOf(model, x), ref.get('logits')!.data as Float32Array);
  assert.ok(diff <= 1e-4, `max |Δlogit| = ${diff}`);
}

describe('whole pickled models and legacy files load and predict as PyTorch does', () => {
  test('the fixtures cover torchvision ResNet-18, VGG, MobileNetV2/V3, DenseNet, Inception-v3, SqueezeNet, GoogLeNet, ShuffleNetV2, RegNet X/Y, EfficientNet B0/V2, ConvNeXt, ViT, Swin V1/V2, edited torchvision models, Sequentials and the legacy format', () => {
    for (const f of ['resnet18.pt', 'resnet18-legacy.pt', 'vgg11_bn.pt', 'mobilenet_v2.pt', 'mobilenet_v3_small.pt', 'densenet.pt', 'inception_v3.pt', 'squeezenet1_1.pt', 'googlenet.pt',
      'shufflenet_v2.pt', 'regnet_x.pt', 'regnet_y.pt', 'efficientnet_b0.pt', 'efficientnet_v2.pt', 'convnext.pt', 'sequential-ceil.pt', 'resnet18-cifar-edit.pt', 'vgg11_bn-linear-head.pt', 'sequential-resnet.pt', 'sequential-cnn.pt', 'sequential-cnn-legacy.pt', 'sequential-mlp.pt', 'sequential-layers.pt', 'resnet18-flat-layers-legacy.pt']) {
      assert.ok(cases.some((c) => c.file === f), f);
    }
  });

  for (const c of cases) {
    test(`${c.file} (${c.format}${c.cls ? `, ${c.cls}` : ', a renamed-keys state_dict'}): ${c.architecture}, PyTorch's logits on its reference images`, async () => {
      const model = await loadModelForData(file(c.file), {}, { path: file(c.reference) });
      assert.equal(model.format, 'pytorch');
      assert.equal(model.architecture, c.architecture);
      assert.deepEqual(model.findings, []);
      if (c.cls) {
        const name = c.cls.startsWith('torchvision.') ? `torchvision ${c.cls.split('.').pop()}` : `torch.nn ${c.cls.split('.').pop()}`;
        assert.match(model.notes![0], new RegExp(`^whole pickled ${name} \\(torch\\.save\\(model\\)\\), built from its \\d+ layers$`));
        if (c.built === 'template') assert.match(model.notes![1], new RegExp(`^${c.architecture} template, matched by (key names|structure: ).*: the same graph$`));
        else assert.doesNotMatch(model.notes![1], /the same graph/);
      }
      await assertPyTorchLogits(model, c.reference);
    });
  }

  test('a torchvision ResNet-18 pickled whole names its template and how, and takes the size of the data (64×64) without --size', async () => {
    const model = await loadModelForData(file('resnet18.pt'), {}, { path: file('resnet18.npz') });
    assert.deepEqual(model.notes, [
      'whole pickled torchvision ResNet (torch.save(model)), built from its 52 layers',
      "resnet18 template, matched by key names; head 'fc', shortcuts 'downsample': the same graph",
      'input 64×64 from the data (the network pools adaptively; --size overrides)',
    ]);
    assert.equal(model.sizeAgnostic, true);
    const alone = await loadModel(file('resnet18.pt'));
    assert.deepEqual(alone.onnx.inputs()[0].dims, ['N', 3, 224, 224]);
  });

  test('a template matched by structure (renamed keys) is compared through its renaming: a Sequential of torchvision BasicBlocks is the resnet18 template', async () => {
    const model = await loadModel(file('sequential-resnet.pt'));
    assert.match(model.notes![1], /^resnet18 template, matched by structure: blocks 'layers\.0'…'layers\.7' read as 4 stages of 2, 2, 2, 2 blocks .*: the same graph$/);
    assert.ok(model.onnx.hasInitializer('layers.2.downsample.0.weight'), 'initializers keep the pickled keys');
  });

  test('a model saved in training mode is run as in eval mode, and the report says so', async () => {
    const entries = zipEntries(file('sequential-cnn.pt'));
    const pkl = Buffer.from(entries.find(([n]) => n.endsWith('data.pkl'))![1]);
    // The root's 'training' entry: the key, its BINPUT (2 bytes), then NEWFALSE → NEWTRUE.
    const at = pkl.indexOf('training', 0, 'latin1') + 'training'.length;
    assert.deepEqual([pkl[at], pkl[at + 2]], [0x71, 0x89]);
    pkl[at + 2] = 0x88;
    const path = join(tempDir(), 'training.pt');
    writeFileSync(path, storedZip(entries.map(([n, d]) => [n, n.endsWith('data.pkl') ? pkl : d])));
    const model = await loadModel(path);
    assert.equal(model.notes![3], 'saved in training mode; run as model.eval() would run it (BatchNorm uses its running statistics, dropout is off)');
    await assertPyTorchLogits(model, 'sequential-cnn.npz');
  });

  test('an edited torchvision model no template builds (3×3 stem, maxpool Identity, Sequential head) is built from its modules', async () => {
    const model = await loadModel(file('resnet18-cifar-edit.pt'));
    assert.equal(model.notes![1], 'no template builds it (the weights look like resnet18 but do not fit its template: missing keys: fc.weight)');
    assert.deepEqual(model.onnx.inputs()[0].dims, ['N', 3, 32, 32]);
    assert.ok(!model.onnx.nodes.some((n) => n.op_type === 'MaxPool'), 'maxpool is an Identity');
  });

  test('a template that would build another graph is not used: the VGG head without ReLUs is named as the difference', async () => {
    const model = await loadModel(file('vgg11_bn-linear-head.pt'), { inputSize: { height: 32, width: 32 } });
    assert.match(model.notes![1], /^not the vgg11_bn template's graph: op \d+ is Gemm 'classifier\.2' here, Relu 'classifier\.0\.relu' in the template$/);
    const gemms = model.onnx.nodes.filter((n) => n.op_type === 'Gemm' || n.op_type === 'Relu').slice(-3);
    assert.deepEqual(gemms.map((n) => n.op_type), ['Gemm', 'Gemm', 'Gemm']);
  });

  test('Inception-v3 runs as in eval mode: transform_input renormalises the channels, AuxLogits is not run (its weights stay in the state_dict), default 299×299', async () => {
    const model = await loadModel(file('inception_v3.pt'));
    assert.deepEqual(model.onnx.inputs()[0].dims, ['N', 3, 299, 299]);
    const first = model.onnx.nodes.slice(0, 2).map((n) => n.op_type);
    assert.deepEqual(first, ['Mul', 'Add']);
    assert.ok(!model.onnx.initializerNames().some((n) => n.startsWith('AuxLogits.')));
    assert.ok([...readWeights(file('inception_v3.pt'), 'pytorch').keys()].some((k) => k.startsWith('AuxLogits.')));
    assert.equal(model.architecture, 'inception3');
  });

  test('SqueezeNet 1.1 runs as its forward(): ceil_mode max-pools keep the last partial window (65×65: 32 → 16, not 15), Fires concatenate, flatten ends it', async () => {
    const model = await loadModelForData(file('squeezenet1_1.pt'), {}, { path: file('squeezenet1_1.npz') });
    const pools = model.onnx.nodes.filter((n) => n.op_type === 'MaxPool');
    assert.deepEqual(pools.map((n) => attrInt(n, 'ceil_mode', 0)), [1, 1, 1]);
    const { shapes } = inferShapes(model.onnx);
    assert.deepEqual(pools.map((n) => shapes.get(n.output[0])!.slice(2)), [[16, 16], [8, 8], [4, 4]]);
    assert.equal(model.onnx.nodes.filter((n) => n.op_type === 'Concat').length, 8, 'one per Fire');
    assert.equal(model.onnx.nodes.at(-1)!.op_type, 'Flatten');
    assert.equal(model.numClasses, 10);
    const alone = await loadModel(file('squeezenet1_1.pt'));
    assert.deepEqual(alone.onnx.inputs()[0].dims, ['N', 3, 224, 224]);
    assert.equal(alone.sizeAgnostic, true);
  });

  test('GoogLeNet runs as in eval mode: transform_input renormalises, aux1 and aux2 are not run (their weights stay), the Inception pools use ceil_mode', async () => {
    const model = await loadModelForData(file('googlenet.pt'), {}, { path: file('googlenet.npz') });
    assert.deepEqual(model.onnx.nodes.slice(0, 2).map((n) => n.op_type), ['Mul', 'Add']);
    assert.ok(!model.onnx.initializerNames().some((n) => n.startsWith('aux')));
    assert.ok([...readWeights(file('googlenet.pt'), 'pytorch').keys()].some((k) => k.startsWith('aux1.') || k.startsWith('aux2.')));
    // Four stage pools (3×3/2 or 2×2/2) and one 3×3/1 per Inception block's branch4: all ceil_mode.
    const pools = model.onnx.nodes.filter((n) => n.op_type === 'MaxPool');
    assert.equal(pools.length, 4 + 9);
    assert.ok(pools.every((n) => attrInt(n, 'ceil_mode', 0) === 1));
    const { shapes } = inferShapes(model.onnx);
    const stage = pools.filter((n) => !n.name!.includes('branch4')).map((n) => shapes.get(n.output[0])!.slice(2));
    assert.deepEqual(stage, [[12, 12], [6, 6], [3, 3], [2, 2]], 'floor mode would give 11, 5, 2, 1');
    assert.equal(model.architecture, 'googlenet');
  });

  test('ShuffleNetV2 runs its own InvertedResidual: stride-1 blocks split the channels and run one half, every block shuffles its channels (Reshape, Transpose, Reshape)', async () => {
    const model = await loadModelForData(file('shufflenet_v2.pt'), {}, { path: file('shufflenet_v2.npz') });
    const ops = model.onnx.nodes.map((n) => n.op_type);
    assert.equal(ops.filter((op) => op === 'Split').length, 3, 'one stride-1 block per stage');
    const transposes = model.onnx.nodes.filter((n) => n.op_type === 'Transpose');
    assert.equal(transposes.length, 6, 'one shuffle per block');
    assert.ok(transposes.every((n) => n.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number).join() === '0,2,1,3,4'));
    assert.ok(!ops.includes('Clip'), "not MobileNetV2's InvertedResidual (ReLU6)");
    assert.equal(model.sizeAgnostic, true);
  });

  test('RegNet X and Y: each block adds its input (or its projection) to f(x) before the ReLU; only Y squeezes and excites', async () => {
    const x = await loadModel(file('regnet_x.pt'));
    const y = await loadModel(file('regnet_y.pt'));
    for (const model of [x, y]) {
      assert.equal(model.onnx.nodes.filter((n) => n.op_type === 'Add').length, 3, 'three blocks');
      assert.ok(model.onnx.hasInitializer('trunk_output.block1.block1-0.proj.0.weight'));
      assert.ok(model.onnx.hasInitializer('trunk_output.block2.block2-1.f.b.0.weight'));
    }
    const sigmoids = (m: LoadedModel) => m.onnx.nodes.filter((n) => n.op_type === 'Sigmoid').length;
    assert.deepEqual([sigmoids(x), sigmoids(y)], [0, 3]);
    assert.ok(y.onnx.hasInitializer('trunk_output.block1.block1-0.f.se.fc1.weight'));
  });

  test('EfficientNet B0 and V2: MBConv and FusedMBConv add the input back only with use_res_connect, StochasticDepth is the identity in eval, V2 keeps its BN eps 1e-3', async () => {
    const b0 = await loadModel(file('efficientnet_b0.pt'));
    const v2 = await loadModel(file('efficientnet_v2.pt'));
    const adds = (m: LoadedModel) => m.onnx.nodes.filter((n) => n.op_type === 'Add').map((n) => n.name!.replace(/\.add.*$/, ''));
    // B0 at depth 0.25 has one block per stage: only the first (8 → 8 channels at width 0.1, stride 1) keeps its input.
    assert.deepEqual(adds(b0), ['features.1.0']);
    assert.deepEqual(adds(v2), ['features.1.0', 'features.1.1', 'features.3.1']);
    const eps = (m: LoadedModel) => new Set(m.onnx.nodes.filter((n) => n.op_type === 'BatchNormalization').map((n) => Math.fround(n.attribute!.find((a) => a.name === 'epsilon')!.f!)));
    assert.deepEqual([...eps(b0)], [Math.fround(1e-5)]);
    assert.deepEqual([...eps(v2)], [Math.fround(1e-3)]);
    assert.ok(b0.onnx.nodes.filter((n) => n.op_type === 'Sigmoid').length > 7, 'SiLU and the squeeze-excitation gates');
  });

  test('ConvNeXt: CNBlocks run channels last between their Permutes (LayerNorm, Linear, GELU as erf), scale by layer_scale and add the input; LayerNorm2d normalises the channels; any input size', async () => {
    const model = await loadModelForData(file('convnext.pt'), {}, { path: file('convnext.npz') });
    const transposes = model.onnx.nodes.filter((n) => n.op_type === 'Transpose' && !n.name!.includes('weight_t'));
    assert.deepEqual(transposes.map((n) => n.attribute![0].ints!.map(Number).join()), ['0,2,3,1', '0,3,1,2', '0,2,3,1', '0,3,1,2'], 'two blocks, one permute pair each');
    assert.equal(model.onnx.nodes.filter((n) => n.op_type === 'Erf').length, 2);
    assert.equal(model.onnx.nodes.filter((n) => n.op_type === 'MatMul').length, 4);
    assert.ok(model.onnx.hasInitializer('features.1.0.layer_scale'));
    // LayerNorms: the stem's, two blocks', the downsampling's and the head's.
    const means = model.onnx.nodes.filter((n) => n.op_type === 'ReduceMean' && n.name!.endsWith('.mean'));
    assert.deepEqual(means.map((n) => Number(n.attribute!.find((a) => a.name === 'axes')!.ints![0])), [1, -1, 1, -1, 1]);
    assert.equal(model.sizeAgnostic, true, 'the head normalises the pooled map: still any size');
  });

  test('ViT: patches become tokens, the class token goes first (no batch-size ops), pos_embedding fixes the size to image_size, two-head attention per layer, the class row feeds the head', async () => {
    const model = await loadModel(file('vit.pt'));
    assert.deepEqual(model.onnx.inputs()[0].dims, ['N', 3, 32, 32], 'image_size, without data');
    assert.equal(model.sizeAgnostic, false);
    assert.equal(model.notes![2], "input 32×32, the ViT's image_size (its position embedding fixes the size)");
    const withData = await loadModelForData(file('vit.pt'), {}, { path: file('vit.npz') });
    assert.equal(withData.notes![2], model.notes![2]);
    const ops = model.onnx.nodes.map((n) => n.op_type);
    assert.ok(!ops.includes('Shape') && !ops.includes('Expand'));
    assert.equal(ops.filter((op) => op === 'Softmax').length, 2, 'one attention per layer');
    assert.equal(ops.filter((op) => op === 'Gather').length, 1, 'x[:, 0]');
    const heads = model.onnx.nodes.find((n) => n.name!.startsWith('encoder.layers.encoder_layer_0.self_attention.q.split_heads'))!;
    assert.deepEqual(Array.from(model.onnx.initializer(heads.input[1])!.data as BigInt64Array, Number), [0, 17, 2, 8]);
    await assert.rejects(loadModel(file('vit.pt'), { inputSize: { height: 64, width: 64 } }), /does not fit --size 64×64: the ViT takes 32×32 images \(image_size\), not 64×64/);
  });

  test('Swin: windows padded to whole windows, shifted blocks rolled and masked, a shift dropped where one window covers the side, odd maps padded before merging; PyTorch at 40×40 and 40×72', async () => {
    const square = await loadModelForData(file('swin.pt'), {}, { path: file('swin.npz') });
    const wide = await loadModelForData(file('swin.pt'), {}, { path: file('swin-at-40x72.npz') });
    await assertPyTorchLogits(wide, 'swin-at-40x72.npz');
    assert.deepEqual(wide.onnx.inputs()[0].dims, ['N', 3, 40, 72]);
    const masks = (m: LoadedModel) => m.onnx.initializerNames().filter((n) => n.endsWith('.shift_mask')).map((n) => n.split('.').slice(0, 3).join('.'));
    // 40×40: stages of 10×10 (→ 12×12), 5×5 (→ 8×8), 3×3 (→ 4×4: one window, no shift).
    assert.deepEqual(masks(square), ['features.1.1', 'features.3.1']);
    // 40×72: the last stage's 3×5 map (→ 4×8) still shifts along its width.
    assert.deepEqual(masks(wide), ['features.1.1', 'features.3.1', 'features.5.1']);
    const rolls = (m: LoadedModel) => m.onnx.nodes.filter((n) => n.op_type === 'Concat' && n.name!.includes('.roll_')).map((n) => n.name!.replace(/_\d+$/, ''));
    assert.deepEqual(rolls(wide).slice(-1), ['features.5.1.attn.roll_w'], 'only the width is rolled where one window covers the height');
    assert.equal(square.onnx.nodes.filter((n) => n.op_type === 'Gather').length, 6, 'a relative position bias per block');
    assert.ok(square.onnx.nodes.some((n) => n.op_type === 'Pad' && n.name!.startsWith('features.4.pad')), 'the 5×5 map is padded to 6×6 before merging');
    assert.equal(square.sizeAgnostic, true);
  });

  test('Swin V2: cosine attention scaled by exp(min(logit_scale, log 100)), bias 16·sigmoid(cpb_mlp(relative_coords_table)), the key third of the qkv bias zeroed, norms after attention, MLP and reduction', async () => {
    const model = await loadModel(file('swin_v2.pt'));
    const named = (op: string) => model.onnx.nodes.filter((n) => n.op_type === op).map((n) => n.name!.replace(/_\d+$/, ''));
    assert.equal(named('Exp').length, 6, 'one logit scale per block');
    assert.ok(named('Min').every((n) => n.endsWith('.logit_scale.clamp')));
    assert.equal(named('Sigmoid').length, 6, '16·sigmoid of each position bias');
    assert.ok(model.onnx.hasInitializer('features.1.0.attn.relative_coords_table'));
    const mask = model.onnx.initializer(model.onnx.initializerNames().find((n) => n.startsWith('features.1.0.attn.qkv.bias_mask'))!)!;
    assert.deepEqual(Array.from(mask.data as Float32Array), [...Array(8).fill(1), ...Array(8).fill(0), ...Array(8).fill(1)]);
    // Block features.1.0: the attention's projection comes before norm1, the MLP before norm2.
    const order = model.onnx.nodes.map((n) => n.name!).filter((n) => /^features\.1\.0\.(attn\.proj|norm1\.mean|mlp\.3|norm2\.mean)(_\d+)?$/.test(n)).map((n) => n.replace(/_\d+$/, ''));
    assert.deepEqual(order, ['features.1.0.attn.proj', 'features.1.0.norm1.mean', 'features.1.0.mlp.3', 'features.1.0.norm2.mean']);
  });

  test("Swin gathers its bias by the file's own relative_position_index; an index outside the table is one clear error, not a crash", async () => {
    const entries = zipEntries(file('swin.pt'));
    // Each 4×4-window block keeps 256 int64 indices; the first is row 24 ((0−0+3)·7 + 0−0+3).
    const isIndex = (d: Uint8Array) => d.byteLength === 256 * 8 && Buffer.from(d).readBigInt64LE(0) === 24n;
    assert.equal(entries.filter(([, d]) => isIndex(d)).length, 6);
    const tampered = entries.map(([n, d]): [string, Uint8Array] => {
      if (!isIndex(d)) return [n, d];
      const copy = Buffer.from(d);
      copy.writeBigInt64LE(49n, 0);
      return [n, copy];
    });
    const path = join(tempDir(), 'swin-index.pt');
    writeFileSync(path, storedZip(tampered));
    await assert.rejects(loadModel(path), (e: unknown) => e instanceof BackdoorLensError && e.code === 'unsupported-model' && !e.message.includes('\n') &&
      /cannot be built: module 'features\.1\.0\.attn' \(ShiftedWindowAttention\) has a relative_position_index outside its bias table$/.test(e.message));
  });

  test("the graphs of the newer families differentiate as PyTorch does: d cross-entropy / d input matches float64 autograd (cosine ≥ 0.9999, relative error ≤ 1e-3, or twice PyTorch's own float32 error where that is larger)", async () => {
    const runtime = new Runtime({ threads: 1 });
    try {
      for (const [f, reference] of [['shufflenet_v2.pt', 'shufflenet_v2.npz'], ['regnet_x.pt', 'regnet_x.npz'], ['regnet_y.pt', 'regnet_y.npz'], ['efficientnet_b0.pt', 'efficientnet_b0.npz'],
        ['efficientnet_v2.pt', 'efficientnet_v2.npz'], ['convnext.pt', 'convnext.npz'], ['vit.pt', 'vit.npz'], ['swin.pt', 'swin.npz'], ['swin.pt', 'swin-at-40x72.npz'], ['swin_v2.pt', 'swin_v2.npz']]) {
        const ref = readNpzArrays(file(reference));
        const model = await loadModelForData(file(f), {}, { path: file(reference) });
        const session = await GradientSession.create(runtime, model.onnx, { loss: { kind: 'cross-entropy' }, wrt: ['input'] });
        const result = await session.run({ inputs: { input: ref.get('x')! }, labels: ref.get('y')!.data as BigInt64Array });
        const expected = ref.get('grad')!.data as Float32Array;
        const cos = cosineSimilarity(result.grads.input, expected), err = maxRelativeError(result.grads.input, expected);
        // The reference is float64; where PyTorch's own float32 gradient is further from it than 1e-3
        // (Swin V2's cosine attention), twice PyTorch's error is the bound.
        const pytorchError = Number((ref.get('grad_f32_error')!.data as Float64Array)[0]);
        assert.ok(cos >= 0.9999 && err <= Math.max(1e-3, 2 * pytorchError), `${reference}: cosine ${cos}, max relative error ${err} (PyTorch float32: ${pytorchError})`);
      }
    } finally {
      runtime.dispose();
    }
  });

  test('ceil_mode pools match PyTorch where it matters: a window that would start in the end padding is dropped, average windows past the padding', async () => {
    const model = await loadModelForData(file('sequential-ceil.pt'), {}, { path: file('sequential-ceil.npz') });
    const { shapes } = inferShapes(model.onnx);
    const pools = model.onnx.nodes.filter((n) => n.op_type === 'MaxPool' || n.op_type === 'AveragePool');
    assert.deepEqual(pools.map((n) => [n.op_type, attrInt(n, 'ceil_mode', 0), attrInt(n, 'count_include_pad', 0), ...shapes.get(n.output[0])!.slice(2)]), [
      ['MaxPool', 1, 0, 10, 10], ['MaxPool', 1, 0, 5, 5], ['AveragePool', 1, 1, 4, 4], ['AveragePool', 1, 0, 3, 3], ['AveragePool', 1, 0, 2, 2],
    ]);
    await assertPyTorchLogits(model, 'sequential-ceil.npz');
  });

  test('a Sequential with every layer kind converts with its own strides, paddings, dilations, groups and eps, at any size (37×37: uneven adaptive bins)', async () => {
    const model = await loadModelForData(file('sequential-layers.pt'), {}, { path: file('sequential-layers-at-37.npz') });
    assert.equal(model.architecture, 'sequential');
    assert.equal(model.notes![2], 'input 37×37 from the data (the network pools adaptively; --size overrides)');
    await assertPyTorchLogits(model, 'sequential-layers-at-37.npz');
    const ops = new Set(model.onnx.nodes.map((n) => n.op_type));
    for (const op of ['Conv', 'BatchNormalization', 'LeakyRelu', 'Elu', 'Clip', 'MaxPool', 'Sigmoid', 'AveragePool', 'Mul', 'Tanh', 'HardSigmoid', 'Relu', 'MatMul', 'Flatten', 'Gemm']) assert.ok(ops.has(op), op);
  });

  test('a Sequential whose head fixes the size gets the first common size that fits its first Linear; --size that does not fit is one clear error', async () => {
    const mlp = await loadModel(file('sequential-mlp.pt'));
    assert.deepEqual(mlp.onnx.inputs()[0].dims, ['N', 1, 28, 28]);
    assert.equal(mlp.sizeAgnostic, false);
    assert.equal(mlp.notes![2], 'input 28×28, the first common size whose feature map fits the first Linear layer (--size overrides)');
    const model = await loadModel(file('sequential-cnn.pt'));
    assert.deepEqual(model.onnx.inputs()[0].dims, ['N', 1, 28, 28]);
    assert.equal(model.notes![2], "input 28×28, the template's default (its head fixes the size)");
    await assert.rejects(loadModel(file('sequential-cnn.pt'), { inputSize: { height: 32, width: 32 } }), (e: unknown) =>
      e instanceof BackdoorLensError && e.code === 'unsupported-model' && /cannot be built: does not fit --size 32×32: 9\.weight takes 784 features but gets 1024/.test(e.message));
  });

  test('the weights of a whole model are its state_dict, under the keys torch gives (purified weights are written back under them)', () => {
    const weights = readWeights(file('sequential-cnn.pt'), 'pytorch');
    assert.deepEqual([...weights.keys()].slice(0, 7), ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked']);
    assert.deepEqual(weights.get('9.weight')!.dims, [32, 784]);
    assert.equal(weights.size, 18);
  });

  test('zip and legacy files of the same model read to the same module tree and state_dict', () => {
    const tree = (f: string) => {
      const path = file(f);
      const record = moduleRecordIn(readTorchObject(readFileSync(path), { path, sha256: '', maxTensorElements: 2 ** 28 }));
      assert.ok(record);
      return moduleTree(path, record);
    };
    const zip = tree('resnet18.pt'), legacy = tree('resnet18-legacy.pt');
    assert.equal(zip.cls, 'torchvision.models.resnet.ResNet');
    assert.equal(zip.children.map((c) => c.name).join(), 'conv1,bn1,relu,maxpool,layer1,layer2,layer3,layer4,avgpool,fc');
    const maxpool = zip.children.find((c) => c.name === 'maxpool')!.module;
    assert.deepEqual([maxpool.kind, maxpool.attrs.get('kernel_size'), maxpool.attrs.get('stride'), maxpool.attrs.get('padding')], ['MaxPool2d', 3, 2, 1]);
    const a = stateDictOf(zip), b = stateDictOf(legacy);
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [k, t] of a) assert.deepEqual(Array.from(t.data as Float32Array), Array.from(b.get(k)!.data as Float32Array), k);
  });

  test('CLI: info says what was built and how; eval reproduces PyTorch on zip and legacy files without --size (accuracy against its argmax is 1)', async () => {
    const info = await cli('info', file('resnet18-legacy.pt'));
    assert.equal(info.exitCode, 0, info.stderr);
    assert.match(info.stdout, /format: +pytorch \(architecture resnet18\)/);
    assert.match(info.stdout, /weights: +whole pickled torchvision ResNet \(torch\.save\(model\)\), built from its 52 layers\n +weights: +resnet18 template, matched by key names; head 'fc', shortcuts 'downsample': the same graph\n/);
    for (const [model, data] of [['resnet18.pt', 'resnet18.npz'], ['sequential-cnn-legacy.pt', 'sequential-cnn.npz'], ['mobilenet_v2.pt', 'mobilenet_v2.npz']]) {
      const r = await cli('eval', file(model), '--data', file(data), '--json');
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).accuracy, 1, model);
    }
  });
});

describe('whole pickled models stay safe: nothing runs, unknown classes and code are refused', () => {
  test("a whole model of the script's own class (__main__.Net) is refused with BL031 naming it, and only it: its torch.nn layers are read", async () => {
    const error = await loadModel(join(picklesDir, 'main-net.pt')).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof UnsafeCheckpointError);
    assert.equal(error.dangerous, false);
    assert.deepEqual(error.findings.map((f) => [f.code, f.location?.symbol]), [['BL031', '__main__.Net']]);
    assert.match(error.findings[0].message, /the pickle needs __main__\.Net, called as __main__\.Net\(\), a class of the code that saved the model \(__main__\), which is not on the allowlist/);
    const r = await cli('scan', join(picklesDir, 'main-net.pt'));
    assert.equal(r.exitCode, 3);
  });

  test('a torch.nn layer Backdoor Lens does not convert is still a class outside the allowlist (BL031), not a guess', async () => {
    const entries = zipEntries(file('sequential-cnn.pt'));
    const pkl = entries.find(([n]) => n.endsWith('data.pkl'))![1];
    // ReLU → SELU (same length): a torch.nn class that is not allowlisted.
    const patched = patchBytes(pkl, 'torch.nn.modules.activation\nReLU\n', 'torch.nn.modules.activation\nSELU\n');
    const path = join(tempDir(), 'selu.pt');
    writeFileSync(path, storedZip(entries.map(([n, d]) => [n, n.endsWith('data.pkl') ? patched : d])));
    const error = await loadModel(path).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof UnsafeCheckpointError);
    assert.deepEqual(error.findings.map((f) => [f.code, f.location?.symbol]), [['BL031', 'torch.nn.modules.activation.SELU']]);
  });

  test('hyperparameters the converter does not take are one clear error naming the module', async () => {
    const dir = tempDir();
    const entries = zipEntries(file('sequential-cnn.pt'));
    const pkl = entries.find(([n]) => n.endsWith('data.pkl'))![1];
    const write = (name: string, data: Uint8Array) => {
      const path = join(dir, name);
      writeFileSync(path, storedZip(entries.map(([n, d]) => [n, n.endsWith('data.pkl') ? data : d])));
      return path;
    };
    const cases: [string, Uint8Array, RegExp][] = [
      ['reflect.pt', patchBytes(pkl, '\x05\x00\x00\x00zeros', '\x05\x00\x00\x00refle'), /module '0' \(Conv2d\) pads with 'refle'; Backdoor Lens converts zero padding only/],
      // A stride of 0 has no output size (the fuzz campaign found it turning a width into Infinity).
      ['stride0.pt', patchBytes(pkl, 'strideqLK\x01K\x01', 'strideqLK\x01K\x00'), /module '0' \(Conv2d\) has stride \(1, 0\); it must be at least 1/],
    ];
    for (const [name, data, pattern] of cases) {
      const path = write(name, data);
      await assert.rejects(loadModel(path), (e: unknown) => e instanceof BackdoorLensError && e.code === 'unsupported-model' && pattern.test(e.message) && !e.message.includes('\n'));
      const r = await cli('info', path);
      assert.equal(r.exitCode, 3, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.ok(r.stderr.startsWith(`backdoor-lens: ${path}: holds a whole pickled torch.nn Sequential that cannot be built:`), r.stderr);
    }
  });

  test('a MaxPool2d edited to ceil_mode=True is converted with ONNX ceil_mode and predicts as PyTorch (28 → 14 → 7: no partial window)', async () => {
    const entries = zipEntries(file('sequential-cnn.pt'));
    const pkl = Buffer.from(entries.find(([n]) => n.endsWith('data.pkl'))![1]);
    // The first MaxPool2d's ceil_mode: the key, its BINPUT (2 bytes), then NEWFALSE → NEWTRUE.
    const at = pkl.indexOf('ceil_mode', 0, 'latin1') + 'ceil_mode'.length;
    assert.deepEqual([pkl[at], pkl[at + 2]], [0x71, 0x89]);
    pkl[at + 2] = 0x88;
    const path = join(tempDir(), 'ceil.pt');
    writeFileSync(path, storedZip(entries.map(([n, d]) => [n, n.endsWith('data.pkl') ? pkl : d])));
    const model = await loadModel(path);
    assert.deepEqual(model.onnx.nodes.filter((n) => n.op_type === 'MaxPool').map((n) => attrInt(n, 'ceil_mode', 0)), [1, 0], 'module 3 only');
    await assertPyTorchLogits(model, 'sequential-cnn.npz');
  });

  test('a Sequential that takes a feature vector (no Flatten before its first Linear) is not an image classifier: one clear error', async () => {
    const entries = zipEntries(file('sequential-mlp.pt'));
    const pkl = entries.find(([n]) => n.endsWith('data.pkl'))![1];
    const path = join(tempDir(), 'vector.pt');
    const patched = patchBytes(pkl, 'torch.nn.modules.flatten\nFlatten\n', 'torch.nn.modules.linear\nIdentity\n');
    writeFileSync(path, storedZip(entries.map(([n, d]) => [n, n.endsWith('data.pkl') ? patched : d])));
    await assert.rejects(loadModel(path), /cannot be built: its first layer with weights, module '1' \(Linear\), takes a feature vector: Backdoor Lens reads image classifiers \(\[N, C, H, W\] inputs\)$/);
  });
});

describe('the module tree is checked as it is read', () => {
  const str = (t: string) => pickleBytes('X', [t.length, 0, 0, 0], t);
  const sequential = 'ctorch.nn.modules.container\nSequential\n';
  const ordered = (items: (string | number[] | Uint8Array)[]) => pickleBytes('ccollections\nOrderedDict\n)R(', ...items, 'u');
  const checkpoint = (body: Uint8Array) => {
    const path = join(tempDir(), 'crafted.pt');
    writeFileSync(path, storedZip([['archive/data.pkl', pickleBytes('\x80\x02', body, '.')], ['archive/version', new TextEncoder().encode('3\n')]]));
    return path;
  };

  test('a module that contains itself (through the memo) is refused, not followed forever', async () => {
    const body = pickleBytes(sequential, ')\x81q\x01}(', str('_modules'), ordered([str('0'), 'h\x01']), 'ub');
    await assert.rejects(loadModel(checkpoint(body)), /the whole pickled model's module '0' contains itself/);
  });

  test("functools.partial (a torchvision model's norm_layer factory) is inert, but its function is judged on its own: partial(posix.system) is BL030", async () => {
    const error = await loadModel(checkpoint(pickleBytes('cfunctools\npartial\ncposix\nsystem\n\x85R'))).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof UnsafeCheckpointError);
    assert.equal(error.dangerous, true);
    assert.deepEqual(error.findings.map((f) => [f.code, f.location?.symbol]), [['BL030', 'posix.system']]);
    await assert.rejects(loadModel(checkpoint(pickleBytes('cfunctools\npartial\n', str('x'), '\x85R'))), /functools\.partial of 'x'; a whole model's partial wraps one class/);
  });

  test('a module with forward hooks is refused: the hooks change what it computes', async () => {
    const body = pickleBytes(sequential, ')\x81}(', str('_forward_hooks'), ordered(['K\x00', 'ccollections\nOrderedDict\n']), str('_modules'), ordered([]), 'ub');
    await assert.rejects(loadModel(checkpoint(body)), /the whole pickled model's root module has forward hooks, code that changes what the model computes/);
  });

  test('a module built with arguments (torch.save never writes one) is refused', async () => {
    const body = pickleBytes(sequential, 'K\x07\x85\x81}b');
    await assert.rejects(loadModel(checkpoint(body)), /the whole pickled model's root module \(torch\.nn\.modules\.container\.Sequential\) is built with arguments 7, which torch\.save never writes/);
  });
});

describe('legacy files are bounded by their own bytes', () => {
  const bytes = readFileSync(file('sequential-cnn-legacy.pt'));
  const dir = tempDir();
  const write = (name: string, data: Uint8Array) => {
    const path = join(dir, name);
    writeFileSync(path, data);
    return path;
  };

  test('a truncated legacy file names the storage that runs past the end', async () => {
    const path = write('truncated.pt', bytes.subarray(0, bytes.length - 100));
    await assert.rejects(loadModel(path), (e: unknown) => e instanceof BackdoorLensError && e.code === 'bad-file' && /storage '\d+' needs \d+ bytes from byte \d+, past the end of the file \(\d+ bytes\): the file is truncated/.test(e.message));
  });

  test('bytes after the last storage are refused (torch.load never reads them), and a pickle hidden there is reported', async () => {
    const extra = write('extra.pt', Buffer.concat([bytes, Buffer.from('junk')]));
    await assert.rejects(loadModel(extra), /has 4 bytes after its last storage, which torch\.load never reads/);
    const hidden = Buffer.concat([bytes, Buffer.from('\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.', 'latin1')]);
    const error = await loadModel(write('hidden.pt', hidden)).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof UnsafeCheckpointError);
    assert.equal(error.findings[0].code, 'BL030');
    assert.equal(error.findings[0].location?.symbol, 'posix.system');
  });

  test('a storage whose recorded count disagrees with the object is corrupt', async () => {
    const record = moduleRecordIn(readTorchObject(bytes, { path: 'x', sha256: '', maxTensorElements: 2 ** 28 }));
    assert.ok(record);
    // Each tensor has a storage of its own: the storages fill the end of the file, an int64 count before each.
    const total = [...stateDictOf(moduleTree('x', record)).values()].reduce((sum, t) => sum + 8 + t.data.byteLength, 0);
    const corrupt = Buffer.from(bytes);
    const at = corrupt.length - total;
    corrupt.writeBigInt64LE(corrupt.readBigInt64LE(at) + 1n, at);
    await assert.rejects(loadModel(write('count.pt', corrupt)), new RegExp(`storage '\\d+' holds \\d+ elements at byte ${at}, but the object declares \\d+: the file is corrupt`));
  });

  test('the legacy state_dict of the same weights reads to the same tensors as its zip', () => {
    const read = (path: string) => {
      const root = readTorchObject(readFileSync(path), { path, sha256: '', maxTensorElements: 2 ** 28 });
      assert.ok(root instanceof PyDict);
      return new Map([...root.entries].map(([k, v]) => [k, v instanceof PyTensor ? Array.from(v.tensor.data as Float32Array) : v]));
    };
    assert.deepEqual(read(file('resnet18-flat-layers-legacy.pt')), read(join(fixtures, 'templates', 'structure', 'resnet18-flat-layers.pt')));
  });
});
