/** Paths and small utilities shared by the tests. */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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

/** A process and its descendants, from /proc (Linux), for measuring a CLI run's whole memory. */
export function processTree(pid: number): number[] {
  const out = [pid];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'latin1').trim();
      for (const c of children ? children.split(/\s+/).map(Number) : []) out.push(...processTree(c));
    }
  } catch {
    // the process ended meanwhile
  }
  return out;
}

/** A version-1.0 .npy file: magic, header length, the header dict padded to 64 bytes, the data. */
export function npyBytes(descr: string, shape: number[], data: Uint8Array): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((header.length + 10) % 64)) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(head);
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), data]);
}

