/**
 * engine/index.ts is the one door into the engine: the front ends (cli/, server/, client/,
 * webview/) and the protocol they share import the engine only through it, types included, so the
 * engine's inner layout can change without touching them. The editor client starts the server but
 * imports none of its code.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, test } from 'node:test';

const root = resolve(__dirname, '..', '..');
const FRONT_ENDS = ['cli', 'server', 'client', 'webview', 'protocol'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (name === 'node_modules' || name === 'dist') return [];
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|tsx|mts|cts|js|mjs)$/.test(name) && !name.endsWith('.d.ts') ? [p] : [];
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

  test('cli, server, client, webview and protocol import the engine only through engine/index.ts', () => {
    const offenders = FRONT_ENDS.flatMap((dir) => sourceFiles(join(root, dir)).flatMap((file) => bypasses(file, readFileSync(file, 'utf8')).map((spec) => `${relative(root, file)}: ${spec}`)));
    assert.deepEqual(offenders, [], `imports past engine/index.ts:\n${offenders.join('\n')}`);
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
