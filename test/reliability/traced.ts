/**
 * Runs the built CLI (dist/) in a child process under strace and reports every path the process
 * (onnxruntime's native code included) opened, so a test can assert that nothing outside the
 * model's folder was read. `npm test` builds dist/ first; CI installs strace (.ci/run).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { root } from '../helpers';

export const cliBin = join(root, 'bin', 'backdoor-lens.js');

export interface TracedRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Absolute paths passed to open/openat/openat2 (successful or not), resolved against the cwd. */
  opened: string[];
  wallMs: number;
}

function strace(): string {
  for (const p of ['/usr/bin/strace', '/bin/strace']) if (existsSync(p)) return p;
  throw new Error('strace is not installed (apt-get install strace); the open-file checks need it');
}

/** The CLI with these arguments in `cwd`, traced. */
export function tracedCli(args: string[], cwd: string, options: { timeoutMs?: number } = {}): TracedRun {
  const dir = mkdtempSync(join(tmpdir(), 'bl-strace-'));
  const log = join(dir, 'trace');
  try {
    const t0 = Date.now();
    const r = spawnSync(strace(), ['-f', '-qq', '-e', 'trace=open,openat,openat2', '-o', log, process.execPath, cliBin, ...args], {
      cwd,
      encoding: 'utf8',
      timeout: options.timeoutMs ?? 120_000,
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    const wallMs = Date.now() - t0;
    const opened: string[] = [];
    for (const line of readFileSync(log, 'utf8').split('\n')) {
      const m = /open(?:at2?)?\((?:[A-Z_]+|-?\d+), "((?:[^"\\]|\\.)*)"/.exec(line);
      if (m) opened.push(isAbsolute(m[1]) ? m[1] : resolve(cwd, m[1]));
    }
    return { exitCode: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, opened, wallMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
