import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { loadModel, UnsafeCheckpointError } from '../../engine';
import { readTorchObject } from '../../engine/formats/torch/checkpoint';
import { cli, root } from '../helpers';
import { picklesDir, templateCases, templatesDir } from './helpers';

interface MaliciousCase {
  file: string;
  code: 'BL030' | 'BL031' | 'BL032';
  symbols: string[];
  live: boolean;
  canary?: string;
  via?: string;
}

const cases: MaliciousCase[] = JSON.parse(readFileSync(join(picklesDir, 'manifest.json'), 'utf8')).malicious;
const canaries = cases.map((c) => c.canary).filter((c): c is string => !!c);
const noCanary = () => {
  for (const c of canaries) assert.equal(existsSync(c), false, `${c} exists: a payload ran`);
};

describe('unsafe checkpoints are refused with findings, and their payloads never run', () => {
  before(() => {
    for (const c of canaries) rmSync(c, { force: true });
  });
  after(noCanary);

  test('the fixtures cover every hiding technique the reader must see through', () => {
    assert.ok(cases.filter((c) => c.live).length >= 10, 'tools/fixtures/pickles.py --verify checked these payloads run under torch.load');
    for (const f of ['reduce.pt', 'memo.pt', 'nested-reduce.pt', 'getattr-chain.pt', 'importlib.pt', 'stack-global-memo.pt', 'inst.pt', 'obj.pt', 'newobj-build.pt', 'legacy.pt', 'plain.pkl']) {
      assert.ok(cases.some((c) => c.file === f), f);
    }
  });

  for (const c of cases) {
    test(`${c.file}: ${c.code} naming ${c.symbols.join(', ') || 'the archive entries'}`, async () => {
      const path = join(picklesDir, c.file);
      let error: unknown;
      try {
        await loadModel(path);
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof UnsafeCheckpointError, `expected a refusal, got ${String(error)}`);
      const codes = new Set(error.findings.map((f) => f.code));
      // An archive that hides a second pickle also has that pickle's globals reported (BL030 beside BL032).
      assert.deepEqual([...codes].filter((x) => !(c.code === 'BL032' && x === 'BL030')), [c.code]);
      assert.equal(error.dangerous, c.code !== 'BL031');
      const symbols = error.findings.map((f) => f.location?.symbol);
      for (const s of c.symbols) assert.ok(symbols.includes(s), `${s} not among ${symbols.join(', ')}`);
      if (c.code === 'BL030') {
        // The finding that names what would run comes first, with the command it would run.
        assert.equal(error.findings[0].location?.symbol, c.symbols[0]);
        if (c.live && c.canary && c.file !== 'exec.pt') assert.ok(error.findings[0].message.includes(`touch ${c.canary}`), error.findings[0].message);
        if (c.via) assert.ok(error.findings[0].message.includes(c.via), error.findings[0].message);
      }
      assert.ok(error.userMessage.startsWith(path));
      noCanary();
    });
  }

  test('scan prints the findings and exits 1 (3 for unknown-but-harmless globals), for every file', async () => {
    for (const c of cases) {
      const r = await cli('scan', join(picklesDir, c.file));
      assert.equal(r.exitCode, c.code === 'BL031' ? 3 : 1, `${c.file}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`${c.code} \\[(pickle|zip)\\]`));
      for (const s of c.symbols) assert.ok(r.stdout.includes(s), `${c.file}: ${s}`);
      assert.match(r.stdout, /No analysis ran/);
    }
    noCanary();
  });

  test('scan --json on a refused file is a valid report carrying the findings', async () => {
    const r = await cli('scan', join(picklesDir, 'getattr-chain.pt'), '--json');
    assert.equal(r.exitCode, 1);
    const report = JSON.parse(r.stdout);
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    addFormats(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync(join(root, 'schemas/report.schema.json'), 'utf8')));
    assert.equal(validate(report), true, JSON.stringify(validate.errors));
    assert.equal(report.verdict, 'inconclusive');
    assert.equal(report.findings[0].code, 'BL030');
    assert.equal(report.findings[0].location.symbol, 'os.system');
  });

  test('scan --sarif reports BL030 as an error result on the checkpoint', async () => {
    const r = await cli('scan', join(picklesDir, 'reduce.pt'), '--sarif');
    assert.equal(r.exitCode, 1);
    const sarif = JSON.parse(r.stdout);
    const result = sarif.runs[0].results[0];
    assert.equal(result.ruleId, 'BL030');
    assert.equal(result.level, 'error');
  });

  test('info, eval and fix refuse and say why (exit 1)', async () => {
    const path = join(picklesDir, 'nested-reduce.pt');
    for (const args of [['info', path], ['eval', path, '--data', join(root, 'fixtures/fmnist/data/test.npz')], ['fix', path, '--method', 'x', '--out', '/tmp/never-written.onnx']]) {
      const r = await cli(...args);
      assert.equal(r.exitCode, 1, r.stderr);
      assert.match(r.stderr, /refusing to load: loading this file with torch.load or pickle would run code/);
      assert.match(r.stderr, /BL030: loading this file with torch.load or pickle would run os\.system\('touch \/tmp\/backdoor-lens-canary-nested-reduce'\)/);
    }
    noCanary();
  });
});

describe('clean checkpoints raise no pickle findings', () => {
  test('the checkpoint the payloads were spliced into reads cleanly', () => {
    const path = join(picklesDir, 'clean.pt');
    assert.doesNotThrow(() => readTorchObject(readFileSync(path), { path, sha256: '0'.repeat(64), maxTensorElements: 1e6 }));
  });

  test('every template fixture and the SmallCNN state_dict load with no findings', async () => {
    for (const file of [...templateCases().map((c) => join(templatesDir, c.file)), join(root, 'fixtures/fmnist/badnets/model.pt')]) {
      const m = await loadModel(file, { inputSize: { height: 64, width: 64 } }).catch(() => loadModel(file));
      assert.deepEqual(m.findings, [], file);
    }
  });
});
