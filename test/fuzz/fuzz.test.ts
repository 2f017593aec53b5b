import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BackdoorLensError } from '../../engine/errors';
import { targets } from './targets';
import { inputFor } from './worker';

async function outcome(format: string, bytes: Uint8Array): Promise<'parsed' | 'error'> {
  const target = targets.find((t) => t.format === format)!;
  try {
    await target.load(bytes);
    return 'parsed';
  } catch (e) {
    if (e instanceof BackdoorLensError) return 'error';
    throw new Error(`${format} loader crashed instead of a clear error: ${(e as Error).stack}`);
  }
}

describe('every loader ends in a result or a clear error on mutated input', () => {
  for (const t of targets) {
    test(`${t.format}: 150 mutated inputs (seed 11)`, async () => {
      const seen = { parsed: 0, error: 0 };
      for (let i = 0; i < 150; i++) seen[await outcome(t.format, inputFor(t.format, 11, i))]++;
      assert.ok(seen.error > 0, 'the mutations must break some inputs');
    });
    test(`${t.format}: the unmutated seeds parse`, async () => {
      for (const seed of t.seeds()) assert.equal(await outcome(t.format, seed), 'parsed');
      // The hostile seeds (issue 15) are refused with a clear error before any mutation.
      for (const seed of t.refusedSeeds?.() ?? []) assert.equal(await outcome(t.format, seed), 'error');
    });
  }
});

const regressions = join(__dirname, 'regressions');
describe('committed crash regressions stay fixed', () => {
  const files = existsSync(regressions) ? readdirSync(regressions).filter((f) => f.endsWith('.bin')) : [];
  for (const f of files) {
    test(f, async () => {
      const format = f.slice(0, f.lastIndexOf('-'));
      assert.ok(targets.some((t) => t.format === format), `no fuzz target for ${format}`);
      await outcome(format, new Uint8Array(readFileSync(join(regressions, f))));
    });
  }
});
