/**
 * Method options: one `--option method.key=value` grammar for scan and fix, checked against what
 * each method declares in its own file; an unknown method or key is a usage error naming the known ones.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { analyses, fixes, methodOptionSpecs, parseMethodOptions, Session } from '../engine';
import { cli, fmnist, tempDir } from './helpers';

const badnets = join(fmnist.badnets, 'model.onnx');
const clean = join(fmnist.data, 'clean.npz');

describe('method option declarations', () => {
  test('every analysis and fix declares its options with a type and a one-line doc', () => {
    for (const id of [...analyses.map((a) => a.id), ...fixes.map((f) => f.id)]) assert.ok(methodOptionSpecs.has(id), id);
    for (const [id, specs] of methodOptionSpecs) {
      for (const [key, spec] of Object.entries(specs)) {
        assert.ok(spec.doc.length > 0 && !spec.doc.includes('\n'), `${id}.${key} has a one-line doc`);
        if (spec.default !== undefined) assert.equal(typeof spec.default, spec.type === 'integer' ? 'number' : spec.type, `${id}.${key}'s default is a ${spec.type}`);
      }
    }
  });

  test('values take their declared types; a bare key belongs to the command\'s own method', () => {
    assert.deepEqual(parseMethodOptions(['pairs.imagesPerClass=20', 'pairs.classPairs=true', 'pairs.objective=patch', 'layer=3'], { command: 'fix', own: 'clp' }), {
      pairs: { imagesPerClass: 20, classPairs: true, objective: 'patch' },
      clp: { layer: '3' },
    });
    assert.throws(() => parseMethodOptions(['pairs.imagesPerClass=20.5'], { command: 'scan' }), /pairs\.imagesPerClass must be a whole number/);
    assert.throws(() => parseMethodOptions(['pairs.classPairs=yes'], { command: 'scan' }), /true or false/);
    assert.throws(() => parseMethodOptions(['imagesPerClass=20'], { command: 'scan' }), /names no method/);
  });

  test('an unknown method or key names the known ones', () => {
    assert.throws(() => parseMethodOptions(['pairs.imagesPerClas=20'], { command: 'scan' }), (e: Error & { code?: string }) => e.code === 'usage' && /unknown option 'pairs\.imagesPerClas'/.test(e.message) && /imagesPerClass/.test(e.message));
    assert.throws(() => parseMethodOptions(['pair.imagesPerClass=20'], { command: 'fix' }), /unknown method 'pair'.*pairs, .*bna/);
    assert.throws(() => new Session({ methodOptions: { nc: { steps: 3 } } }), /unknown option 'nc\.steps'; nc takes threshold, imagesPerClass, batchSize, maxSteps, maxBatch \(methodOptions\)/);
  });
});

describe('--option on the command line', () => {
  test('scan --option pairs.imagesPerClas=20 is a usage error naming imagesPerClass', async () => {
    const r = await cli('scan', badnets, '--data', clean, '--option', 'pairs.imagesPerClas=20');
    assert.equal(r.exitCode, 4);
    assert.match(r.stderr, /unknown option 'pairs\.imagesPerClas'; pairs takes .*imagesPerClass/);
  });

  test('fix --option with an unknown key is a usage error before any work', async () => {
    const r = await cli('fix', badnets, '--method', 'bna', '--data', clean, '--option', 'bna.imagesPerClas=20');
    assert.equal(r.exitCode, 4);
    assert.match(r.stderr, /unknown option 'bna\.imagesPerClas'; bna takes .*imagesPerClass/);
  });

  test('a backdoor-lens.json with an unknown option is a usage error naming the file', async () => {
    const dir = tempDir();
    const config = join(dir, 'backdoor-lens.json');
    writeFileSync(config, JSON.stringify({ methodOptions: { mmbd: { start: 2 } } }));
    const r = await cli('scan', badnets, '--config', config);
    assert.equal(r.exitCode, 4);
    assert.match(r.stderr, /unknown option 'mmbd\.start'; mmbd takes .*starts.* \(methodOptions in .*backdoor-lens\.json\)/);
  });

  test('fix --method bna --option pairs.imagesPerClass=20 reverses with that setting', async () => {
    // The clean twin: the reversal (with 20 images per class) finds no trigger, so BNA has nothing to correct.
    const r = await cli('fix', join(fmnist.clean, 'model.onnx'), '--method', 'bna', '--data', clean, '--option', 'pairs.imagesPerClass=20', '--json');
    assert.equal(r.exitCode, 1, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.method, 'bna');
    assert.equal(out.written.length, 0);
    assert.match(out.headline, /bna: failed/);
  });

  test('eval --option sets STRIP\'s options, and names them when a key is unknown', async () => {
    const r = await cli('eval', badnets, '--data', join(fmnist.data, 'triggered.npz'), '--target', '0', '--strip', clean, '--option', 'strip.perturbations=4', '--json');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).strip.perturbations, 4);
    const bad = await cli('eval', badnets, '--data', clean, '--option', 'pairs.imagesPerClass=20');
    assert.equal(bad.exitCode, 4);
    assert.match(bad.stderr, /unknown method 'pairs'.*strip/);
  });

  test('--help lists every declared option with its default', async () => {
    const scan = (await cli('scan', '--help')).stdout;
    const fix = (await cli('fix', '--help')).stdout;
    for (const a of analyses) for (const key of Object.keys(a.options)) assert.match(scan, new RegExp(`^  ${a.id}\\.${key} `, 'm'), `scan --help lists ${a.id}.${key}`);
    for (const f of fixes) for (const key of Object.keys(methodOptionSpecs.get(f.id)!)) assert.match(fix, new RegExp(`^  ${f.id}\\.${key} `, 'm'), `fix --help lists ${f.id}.${key}`);
    assert.match(scan, /^  pairs\.imagesPerClass +integer +clean images per class the triggers are reversed on \(default 30\)$/m);
    assert.match((await cli('eval', '--help')).stdout, /^  strip\.perturbations +integer /m);
  });
});
