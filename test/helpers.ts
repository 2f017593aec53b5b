/** Paths and small utilities shared by the tests. */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { runCli } from '../cli/main';

export const root = join(__dirname, '..');
export const fixtures = join(root, 'fixtures');
export const fmnist = {
  badnets: join(fixtures, 'fmnist/badnets'),
  clean: join(fixtures, 'fmnist/clean'),
  all2all: join(fixtures, 'fmnist/all2all'),
  badnetsPrunable: join(fixtures, 'fmnist/badnets-prunable'),
  badnetsPrunableClean: join(fixtures, 'fmnist/badnets-prunable-clean'),
  data: join(fixtures, 'fmnist/data'),
};

export interface Reference {
  accuracy: number;
  asr: number;
  sourceAccuracy: number;
  target: number | null;
  predictionsTest: number[];
  predictionsTriggered: number[];
  logitsFirst8: number[][];
}

/** The SHA-256 of a file's bytes (to show an input was left untouched). */
export const fileSha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** A temporary folder removed when the test file ends. */
export function tempDir(prefix = 'bl-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the CLI in-process. */
export function cli(...args: string[]) {
  return runCli(args);
}
