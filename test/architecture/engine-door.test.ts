/**
 * engine/index.ts is the one door into the engine: everything outside engine/ and test/ (the front
 * ends cli/, server/, client/, webview/, the protocol they share, the benchmarks in bench/, the
 * scripts in tools/, bin/) imports the engine only through it, types included, so the engine's inner
 * layout can change without touching them. Only tests may reach inside; the benchmarks and harnesses
 * that time or fuzz inner modules live in test/ for that reason. The editor client starts the server
 * but imports none of its code.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, test } from 'node:test';

const root = resolve(__dirname, '..', '..');

/** Never source: dependencies, build outputs (.gitignore's dist/, out/, test-results/) and hidden folders (.git, .cache). */
const NOT_SOURCE = new Set(['node_modules', 'dist', 'out', 'test-results']);
const skipped = (name: string) => NOT_SOURCE.has(name) || name.startsWith('.');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (skipped(name)) return [];
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|tsx|mts|cts|js|mjs|cjs)$/.test(name) && !name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The repository's top-level entries the door applies to: every one but engine/ and test/. */
function outsideEngineAndTests(): string[] {
  return readdirSync(root).filter((name) => name !== 'engine' && name !== 'test' && !skipped(name));
}

/** Source files of these top-level entries (folders walked, files taken as they are). */
function sourcesOf(entries: string[]): string[] {
  return entries.flatMap((name) => {
    const p = join(root, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|tsx|mts|cts|js|mjs|cjs)$/.test(name) && !name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every module specifier a source names: static imports and re-exports, import(), require(). */
export function specifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [/\b(?:import|export)\s[^'"`;]*?\sfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of source.matchAll(re)) found.push(m[1]);
  return found;
}

/** The repository-relative path a relative specifier points at ('engine' for the folder itself), or undefined for packages. */
function target(file: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  return relative(root, resolve(dirname(file), spec)).split(sep).join('/');
}

/** Imports of this file that pass by engine/index.ts: anything under engine/ but the folder itself or its index. */
export function bypasses(file: string, source: string): string[] {
  return specifiers(source).filter((spec) => {
    const t = target(file, spec);
    return t !== undefined && t.startsWith('engine/') && !/^engine\/index(\.ts)?$/.test(t);
  });
}

describe('the engine has one door', () => {
  test('the check catches an import past engine/index.ts, in every form', () => {
    const file = join(root, 'server', 'src', 'features', 'example.ts');
    const source = [
      "import { engineThing } from '../../../engine';",
      "import type { ScanReport } from '../../../engine/report/types';",
      "export { x } from '../../../engine/analyses/registry';",
      "const m = await import('../../../engine/scan');",
      "const r = require('../../../engine/errors');",
      "import '../../../engine/runtime/limits';",
      "import { y } from '../../../engine/index';",
    ].join('\n');
    assert.deepEqual(bypasses(file, source), ['../../../engine/report/types', '../../../engine/analyses/registry', '../../../engine/runtime/limits', '../../../engine/scan', '../../../engine/errors']);
  });

  test('the check reads every folder outside engine/ and test/: the front ends, the protocol, bench, tools and bin', () => {
    const entries = outsideEngineAndTests();
    for (const dir of ['cli', 'server', 'client', 'webview', 'protocol', 'bench', 'tools', 'bin']) assert.ok(entries.includes(dir), `${dir}/ is not checked`);
    assert.ok(!entries.includes('engine') && !entries.includes('test') && !entries.includes('node_modules'));
    const files = sourcesOf(entries).map((f) => relative(root, f).split(sep).join('/'));
    for (const file of ['cli/main.ts', 'server/src/server.ts', 'bench/run.ts', 'tools/build.mjs', 'bin/backdoor-lens.js']) assert.ok(files.includes(file), `${file} is not read`);
  });

  test('nothing outside engine/ and test/ imports the engine past engine/index.ts', () => {
    const offenders = sourcesOf(outsideEngineAndTests()).flatMap((file) => bypasses(file, readFileSync(file, 'utf8')).map((spec) => `${relative(root, file)}: ${spec}`));
    assert.deepEqual(offenders, [], `imports past engine/index.ts (move code that needs engine internals under test/):\n${offenders.join('\n')}`);
  });

  test('the editor client and the webview import no server code', () => {
    const offenders = ['client', 'webview'].flatMap((dir) =>
      sourceFiles(join(root, dir)).flatMap((file) => specifiers(readFileSync(file, 'utf8')).filter((spec) => target(file, spec)?.startsWith('server/')).map((spec) => `${relative(root, file)}: ${spec}`)),
    );
    assert.deepEqual(offenders, []);
  });
});

describe('names the front ends keep without bundling the engine', () => {
  test("protocol's fix ids are the engine registry's, in its order (cheapest first)", async () => {
    const { fixes } = await import('../../engine');
    const { FIX_IDS } = await import('../../protocol/fix-names');
    assert.deepEqual(FIX_IDS, fixes.map((f) => f.id));
  });
});

describe('the methods stand alone', () => {
  test('no registered analysis imports another: they share machinery, not each other', () => {
    const dir = join(root, 'engine', 'analyses');
    const registry = readFileSync(join(dir, 'registry.ts'), 'utf8');
    const methods = specifiers(registry).filter((s) => s.startsWith('./') && s !== './types').map((s) => join(dir, `${s.slice(2)}.ts`));
    assert.ok(methods.length >= 8, `registry lists ${methods.length} method files`);
    const offenders = methods.flatMap((file) => specifiers(readFileSync(file, 'utf8')).filter((s) => methods.includes(resolve(dirname(file), `${s}.ts`))).map((s) => `${relative(root, file)}: ${s}`));
    assert.deepEqual(offenders, []);
  });
});
