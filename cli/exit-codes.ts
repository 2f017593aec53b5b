/** The CLI's exit codes, in one place: the commands, --help and the README say the same. */
import type { ErrorCode } from '../engine';

/**
 * Exit codes follow model scanners: 0 nothing found, 1 found, 2 bad file/data or a limit reached, 3 no
 * supported model, 4 usage, 5 inconclusive (no detector reached a verdict: never mistaken for 0 in CI).
 * Every command exits 1 on a checkpoint it refuses for an error-level finding (unsafe pickle, hiding archive).
 */
export const exitCodes: Record<ErrorCode, number> = {
  'bad-file': 2,
  'bad-data': 2,
  limit: 2,
  cancelled: 2,
  internal: 2,
  'unsupported-model': 3,
  usage: 4,
};

/** A scan that ran but whose detectors reached no verdict (unsupported ops, no data): not "nothing found". */
export const inconclusiveExitCode = 5;

export const exitCodeHelp = `Exit codes: 0 no backdoor found, 1 backdoor or an error-level finding (unsafe pickle, hiding
archive), 2 bad file or data or a limit reached (time, memory, size), 3 no supported model, 4 usage error,
5 inconclusive (no detector reached a verdict, e.g. ops the detectors cannot handle, or no data).`;
