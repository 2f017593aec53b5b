/**
 * A checkpoint we refuse to load, with the findings that say why. Readers throw it instead of
 * returning a LoadedModel; `scan` turns it into a report of those findings (exit 1 when one is an
 * error), and the other commands print them as the reason they stop.
 */
import { BackdoorLensError } from '../errors';
import { codeInfo } from '../report/codes';
import type { Finding, ModelFormat } from '../report/types';
import type { ZipAnomaly } from '../io/zip';
import type { GlobalUse } from './pickle/machine';

export class UnsafeCheckpointError extends BackdoorLensError {
  readonly findings: Finding[];
  readonly format: ModelFormat;
  readonly sha256: string;

  constructor(file: string, findings: Finding[], info: { format: ModelFormat; sha256: string; extra?: string }) {
    const dangerous = findings.some((f) => f.severity === 'error');
    const head = findings.some((f) => f.code === 'BL030')
      ? 'refusing to load: loading this file with torch.load or pickle would run code'
      : dangerous
        ? 'refusing to load: its zip structure lets a scanner and torch.load see different content'
        : 'refusing to load: its pickle needs Python objects outside the allowlist of what a weights file holds';
    const lines = findings.map((f) => `  ${f.severity} ${f.code}: ${f.message}`);
    super(dangerous ? 'bad-file' : 'unsupported-model', [head + (info.extra ? ` (${info.extra})` : ''), ...lines].join('\n'), { file });
    this.name = 'UnsafeCheckpointError';
    this.findings = findings;
    this.format = info.format;
    this.sha256 = info.sha256;
  }

  /** Whether any finding is an error (code execution, a hiding archive). */
  get dangerous(): boolean {
    return this.findings.some((f) => f.severity === 'error');
  }
}

export function isUnsafeCheckpointError(e: unknown): e is UnsafeCheckpointError {
  return e instanceof UnsafeCheckpointError;
}

/** Where in the pickle a global was named and called, for messages. */
function trail(u: GlobalUse, where: string): string {
  const named = /^(GLOBAL|STACK_GLOBAL|INST)\b/.test(u.via) ? `named by ${u.via} at byte ${u.offset}` : `reached through ${u.via} at byte ${u.offset}`;
  const called = u.call && u.callOpcode && u.callOpcode !== 'INST' ? `, called by ${u.callOpcode} at byte ${u.callOffset}` : '';
  return `${where}: ${named}${called}`;
}

/** Helpers that only lead to the real target (getattr, __import__): reported after it. */
const INDIRECTIONS = new Set(['builtins.getattr', 'builtins.__import__', 'importlib.import_module', 'importlib.__import__']);

/** What the file would run first, the helpers and bare module imports that lead there after. */
function rank(u: GlobalUse): number {
  if (INDIRECTIONS.has(u.qualified)) return 2;
  if (!u.qualified.includes('.')) return 3;
  return u.call ? 0 : 1;
}

/** One finding per global the pickle reaches outside the allowlist, the code it would run first. */
export function pickleFindings(uses: readonly GlobalUse[], where: string): Finding[] {
  return [...uses].sort((a, b) => rank(a) - rank(b) || a.offset - b.offset).map((u): Finding => {
    if (u.danger === 'dangerous') {
      const message = u.call
        ? `loading this file with torch.load or pickle would run ${u.call}: ${u.reason} (${trail(u, where)})`
        : `the pickle loads ${u.qualified}: ${u.reason}, which can run code or reach the system (${trail(u, where)})`;
      return { severity: codeInfo('BL030').severity, code: 'BL030', message, method: 'pickle', location: { symbol: u.qualified } };
    }
    const message = `the pickle needs ${u.qualified}${u.call ? `, called as ${u.call}` : ''}, ${u.reason}, which is not on the allowlist of globals a weights file uses (${trail(u, where)})`;
    return { severity: codeInfo('BL031').severity, code: 'BL031', message, method: 'pickle', location: { symbol: u.qualified } };
  });
}

export function archiveFindings(anomalies: readonly ZipAnomaly[]): Finding[] {
  return anomalies.map((a) => ({
    severity: codeInfo('BL032').severity,
    code: 'BL032',
    message: `${a.message}: zip readers disagree on such files, so a scanner and torch.load can see different content`,
    method: 'zip',
    location: { symbol: a.names[0] },
  }));
}
