/**
 * npm run bench: runs every case and prints one table per case, in the order of their names.
 * A case exports `name` and `run(): Promise<Row[]>`; speed targets live here, never in unit tests.
 *   npm run bench [-- filter]      a case's exact name, or part of the names
 * Cases that use the engine as a front end does, through engine/index.ts, are in bench/cases/;
 * those that time or drive the engine's inner modules (gradient graphs, ANP's masks, the pickle
 * reader, the calibration of the reversal screens) are in test/bench-internals/, since only
 * test/ may import past engine/index.ts (docs/architecture.md, "The one door").
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface Row {
  [column: string]: string | number;
}

export interface BenchCase {
  name: string;
  run(): Promise<Row[]>;
}

function fmt(v: string | number): string {
  if (typeof v === 'string') return v;
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(4);
}

export function table(rows: Row[]): string {
  if (rows.length === 0) return '(no rows)';
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = rows.map((r) => cols.map((c) => (r[c] === undefined ? '' : fmt(r[c]))));
  const width = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const line = (vals: string[]) => `| ${vals.map((v, i) => v.padEnd(width[i])).join(' | ')} |`;
  return [line(cols), `|${width.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

const caseDirs = [join(__dirname, 'cases'), join(__dirname, '..', 'test', 'bench-internals')];

/** Every case file by its name ('gradient.ts'), whichever folder holds it. */
function caseFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const dir of caseDirs) {
    for (const f of readdirSync(dir).filter((name) => name.endsWith('.ts'))) {
      if (files.has(f)) throw new Error(`two bench cases are named ${f}: ${files.get(f)} and ${join(dir, f)}`);
      files.set(f, join(dir, f));
    }
  }
  return files;
}

async function main() {
  const filter = process.argv[2];
  const paths = caseFiles();
  const all = [...paths.keys()].sort();
  // A case's exact name runs that case alone ('efficacy' is not also 'efficacy-datafree').
  const files = all.includes(`${filter}.ts`) ? [`${filter}.ts`] : all.filter((f) => !filter || f.includes(filter));
  for (const f of files) {
    const mod = (await import(paths.get(f)!)) as BenchCase;
    const t0 = Date.now();
    const rows = await mod.run();
    console.log(`\n## ${mod.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    console.log(table(rows));
  }
}

if (require.main === module) main().catch((e) => {
  console.error(e);
  process.exit(1);
});
