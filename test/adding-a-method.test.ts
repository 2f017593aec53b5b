/**
 * docs/adding-a-method.md describes a working method: its example, taken from the page as written,
 * declares options that parse, runs in a scan, and its verdict, evidence and threshold reach the report.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { analyses, loadDataset, loadModel, Runtime, scan } from '../engine';
import type { Analysis } from '../engine/analyses/types';
import { imageInputOf } from '../engine/evaluate';
import { optionsHelp, parseOptionItems } from '../engine/method-options';
import { fmnist, root, tempDir } from './helpers';

/** The page's example as a module: its relative imports pointed at the engine it names. */
async function exampleFromPage(): Promise<{ example: Analysis }> {
  const page = readFileSync(join(root, 'docs', 'adding-a-method.md'), 'utf8');
  const code = /```ts\n\/\/ engine\/analyses\/methods\/example\.ts\n([\s\S]*?)```/.exec(page)?.[1];
  assert.ok(code, 'the page has the example method');
  const methods = join(root, 'engine', 'analyses', 'methods');
  const file = join(tempDir(), 'example.ts');
  writeFileSync(file, code.replace(/from '(\.{1,2}\/[^']+)'/g, (_, spec: string) => `from '${join(methods, spec)}'`));
  return import(file);
}

describe('docs/adding-a-method.md', () => {
  const runtime = new Runtime();
  after(() => runtime.dispose());

  test("the example's options parse, are named when unknown, and show in help", async () => {
    const { example } = await exampleFromPage();
    const declared = new Map([[example.id, example.options]]);
    assert.deepEqual(parseOptionItems(['example.share=0.2'], declared), { example: { share: 0.2 } });
    assert.throws(() => parseOptionItems(['example.shar=0.2'], declared), /unknown option 'example\.shar'; example takes share/);
    assert.match(optionsHelp(declared), /^  example\.share +number +share of the predictions one class may take unflagged \(default 0\.5\)$/m);
  });

  test('the example runs in a scan: its verdict, evidence and threshold are in the report', async () => {
    const { example } = await exampleFromPage();
    const model = await loadModel(join(fmnist.badnets, 'model.onnx'));
    const triggered = loadDataset({ path: join(fmnist.data, 'triggered.npz') }, imageInputOf(model.onnx));
    const registry = [...analyses, example];
    // Triggered images all go to class 0: above a share of 0.5, a backdoor by this method's rule.
    const { report } = await scan(model, { runtime, data: triggered, analyses: registry, methods: ['example'] });
    assert.equal(report.verdict, 'backdoored');
    assert.deepEqual(report.targets, [0]);
    assert.equal(report.methods[0].threshold, 0.5);
    assert.equal(report.evidence[0].method, 'example');
    assert.ok(report.evidence[0].value > 0.5);
    // Its option changes its decision: no class takes more than all of the predictions.
    const strict = await scan(model, { runtime, data: triggered, analyses: registry, methods: ['example'], methodOptions: { example: { share: 1 } } });
    assert.equal(strict.report.verdict, 'clean');
    assert.equal(strict.report.methods[0].threshold, 1);
  });
});
