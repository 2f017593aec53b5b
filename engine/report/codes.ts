/**
 * The stable finding codes. Each has a page docs/findings/<code>.md that explains it and what
 * to do; SARIF rules, diagnostics and the text report all read from this table.
 */
import type { Severity } from './types';

export interface FindingCode {
  code: string;
  /** Short rule name (SARIF rule name, diagnostic source text). */
  name: string;
  title: string;
  severity: Severity;
}

export const findingCodes = {
  BL001: { code: 'BL001', name: 'backdoor-class-pair', title: 'Backdoor detected: a class pair is an outlier under trigger reversal', severity: 'error' },
  BL002: { code: 'BL002', name: 'backdoor-target-label', title: 'Backdoor detected: a target label has an anomalously small reversed trigger', severity: 'error' },
  BL003: { code: 'BL003', name: 'backdoor-summary', title: 'Model verdict', severity: 'error' },
  BL004: { code: 'BL004', name: 'backdoor-target', title: 'Backdoor detected: one small trigger sends every class to a target', severity: 'error' },
  BL005: { code: 'BL005', name: 'backdoor-all-to-all', title: 'Backdoor detected: one small trigger sends every class c to class c + k', severity: 'error' },
  BL006: { code: 'BL006', name: 'backdoor-max-margin', title: 'Backdoor detected without data: a class reaches an anomalously large logit margin (MM-BD)', severity: 'error' },
  BL010: { code: 'BL010', name: 'clp-neurons', title: 'Channels with outlying Lipschitz upper bound (CLP)', severity: 'warning' },
  BL011: { code: 'BL011', name: 'bnp-neurons', title: 'Channels whose clean statistics diverge from BN running statistics (BNP)', severity: 'warning' },
  BL012: { code: 'BL012', name: 'ep-neurons', title: 'Channels with outlying low activation entropy (EP)', severity: 'warning' },
  BL013: { code: 'BL013', name: 'anp-neurons', title: 'Channels pruned by adversarial neuron pruning (ANP)', severity: 'warning' },
  BL014: { code: 'BL014', name: 'fp-dormant', title: 'Dormant channels in the last conv layer (Fine-Pruning)', severity: 'warning' },
  BL020: { code: 'BL020', name: 'bn-folded', title: 'BatchNormalization folded into Conv: BN-based methods not applicable', severity: 'information' },
  BL021: { code: 'BL021', name: 'method-skipped', title: 'Method skipped', severity: 'information' },
  BL022: { code: 'BL022', name: 'method-failed', title: 'Method failed', severity: 'warning' },
  BL023: { code: 'BL023', name: 'not-enough-data', title: 'Not enough data for a method', severity: 'warning' },
  BL030: { code: 'BL030', name: 'unsafe-pickle', title: 'Checkpoint would execute code when loaded with pickle', severity: 'error' },
  BL031: { code: 'BL031', name: 'unknown-pickle-global', title: 'Checkpoint references a global outside the allowlist', severity: 'warning' },
  BL032: { code: 'BL032', name: 'suspicious-archive', title: 'Checkpoint archive is malformed in a way that hides data', severity: 'error' },
  BL040: { code: 'BL040', name: 'limit-reached', title: 'A scan limit was reached', severity: 'warning' },
  BL050: { code: 'BL050', name: 'scan-failed', title: 'The checkpoint could not be scanned', severity: 'error' },
} as const satisfies Record<string, FindingCode>;

export type FindingCodeId = keyof typeof findingCodes;

export function codeInfo(code: string): FindingCode {
  return (findingCodes as Record<string, FindingCode>)[code] ?? { code, name: code.toLowerCase(), title: code, severity: 'warning' };
}

/** Where the explanation of a code lives, relative to the repository root. */
export function codeDocPath(code: string): string {
  return `docs/findings/${code}.md`;
}
