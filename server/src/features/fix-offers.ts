/**
 * Which fixes to offer after a scan, and how to title them: what the fix will act on, its expected
 * effect (the measured one when this content was fixed with it before) and an estimate of its
 * cost from the scan's own timings. A fix that cannot act on what the scan found (pruning with a
 * method that flagged nothing, a trigger correction without a detected trigger) is not offered in
 * the lightbulb; the command palette lists it with the reason.
 */
import type { ScanReport } from '../../../engine';
import type { FixSummary } from '../../../protocol/lsp';
import type { AvailableFix, FixOffer } from '../../../protocol/report-view';
import { fixTitle, hasShortName } from '../../../protocol/fix-names';
import { clip } from '../../../protocol/verdict-text';


const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);

/** "~5 s", "~40 s", "~2 min": rounded so it does not pretend to be a measurement. */
export function durationText(ms: number): string {
  const s = ms / 1000;
  if (s < 10) return `~${Math.max(1, Math.round(s))} s`;
  if (s < 90) return `~${Math.round(s / 10) * 10} s`;
  return `~${Math.round(s / 60)} min`;
}

const methodMs = (report: ScanReport, id: string) => report.methods.find((m) => m.method === id && m.status === 'ran')?.ms;

/**
 * Cost estimates, from this scan's timings (ratios measured on the bundled BadNets example, 2 cores:
 * scan 41 s with pairs 32 s and fp 8 s; BNA 85 s; adaptive pruning 5–7 s).
 *  - A trigger correction re-reverses the trigger of each target with the full schedule and then
 *    fits per layer: about 2.5× the class-pair detector's time per target.
 *  - Pruning reuses the scan's scores, then searches the pruning depth with about as many
 *    accuracy evaluations as Fine-Pruning's scan makes: about its time, else a fifth of the scan.
 */
function costMs(fix: AvailableFix, report: ScanReport): number | undefined {
  const total = report.timings.total ?? 0;
  if (fix.basis === 'trigger') {
    const detector = methodMs(report, 'pairs') ?? methodMs(report, 'nc');
    return detector === undefined ? undefined : 2.5 * detector * Math.max(1, report.targets.length);
  }
  const scored = methodMs(report, fix.id);
  if (scored === undefined) return undefined;
  return (methodMs(report, 'fp') ?? 0.2 * total) + 1000;
}

function sum(costs: (number | undefined)[]): number | undefined {
  return costs.length && costs.every((c) => c !== undefined) ? costs.reduce((a, b) => a! + b!, 0) : undefined;
}

function neuronCounts(report: ScanReport, method: string) {
  const scores = report.neurons.filter((n) => n.method === method);
  const flagged = scores.filter((n) => n.flagged);
  const layers = [...new Set(flagged.map((n) => n.layer))];
  return { scored: scores.length, flagged: flagged.length, layers };
}

function layerList(layers: string[]): string {
  return layers.length <= 3 ? layers.join(', ') : `${layers.slice(0, 2).join(', ')} and ${layers.length - 2} more`;
}

function measuredText(tried: FixSummary | undefined): string | undefined {
  if (!tried) return undefined;
  const parts = [tried.before.asr !== null || tried.after.asr !== null ? `ASR ${pct(tried.before.asr)} → ${pct(tried.after.asr)}` : '', tried.after.accuracy !== null ? `accuracy ${pct(tried.after.accuracy)}` : ''].filter(Boolean);
  return parts.length ? `last run${tried.outcome ? ` ${tried.outcome}` : ''}: ${parts.join(', ')}` : undefined;
}

/** One fix as the editor offers it for this scan (or, before a scan, as it is). `others`: 'auto' tries them all, so costs their sum. */
export function fixOffer(fix: AvailableFix, report: ScanReport | undefined, tried?: FixSummary, others: readonly AvailableFix[] = []): FixOffer {
  // The short names the client uses too; a fix without one is named by its registry title.
  const name = fix.id === 'auto' ? `${fixTitle('auto')} (each fix, keep the best)` : hasShortName(fix.id) || fix.basis === 'neurons' ? fixTitle(fix.id) : clip(fix.title, 48);
  const disabled = fix.notApplicable;
  if (!report) return { id: fix.id, title: name, helps: false, ...(fix.basis ? { basis: fix.basis } : {}), why: 'scan the model first', ...(disabled ? { disabled } : {}) };
  let what = name;
  let helps: boolean;
  let why: string | undefined;
  if (fix.basis === 'neurons') {
    const c = neuronCounts(report, fix.id);
    helps = c.flagged > 0;
    if (!c.scored) why = `${fix.id.toUpperCase()} did not run in the last scan${fix.id === 'anp' ? ' (slow: minutes, hours on a ResNet-18)' : ''}`;
    else if (!c.flagged) why = `${fix.id.toUpperCase()} flagged no channels in the last scan`;
    else what = `${name} (${c.flagged} flagged channel${c.flagged === 1 ? '' : 's'} in ${layerList(c.layers)})`;
  } else {
    helps = report.verdict === 'backdoored' && report.targets.length > 0;
    if (helps) what = `${name} for target${report.targets.length > 1 ? 's' : ''} ${report.targets.join(', ')}`;
    else why = report.verdict === 'inconclusive' ? 'no detector ran, so there is no trigger to act on' : 'no backdoor was detected, so there is no trigger to act on';
  }
  const cost = fix.id === 'auto' ? sum(others.filter((o) => o.id !== 'auto' && !o.notApplicable && fixOffer(o, report).helps).map((o) => costMs(o, report))) : costMs(fix, report);
  const effect = measuredText(tried);
  const tail = [effect, cost !== undefined ? `est. ${durationText(cost)}` : fix.id === 'anp' ? 'slow: minutes or more' : ''].filter(Boolean).join(', ');
  return { id: fix.id, title: clip(tail ? `${what} — ${tail}` : what), helps: helps && !disabled, ...(fix.basis ? { basis: fix.basis } : {}), ...(why ? { why } : {}), ...(disabled ? { disabled } : {}) };
}

/** Every fix, best first: trigger fixes for a detected backdoor, then pruning by the methods that flagged the most, then the rest. */
export function fixOffers(fixes: readonly AvailableFix[], report: ScanReport | undefined, tried: ReadonlyMap<string, FixSummary> = new Map()): FixOffer[] {
  const offers = fixes.map((f) => ({ fix: f, offer: fixOffer(f, report, tried.get(f.id), fixes) }));
  const flagged = (id: string) => (report ? neuronCounts(report, id).flagged : 0);
  const rank = ({ fix, offer }: (typeof offers)[number]) => (offer.helps ? 0 : offer.disabled ? 2 : 1) * 10 + (fix.basis === 'trigger' ? 0 : 1);
  return offers
    .sort((a, b) => rank(a) - rank(b) || (a.fix.id === 'auto' ? -1 : b.fix.id === 'auto' ? 1 : 0) || flagged(b.fix.id) - flagged(a.fix.id))
    .map((o) => o.offer);
}
