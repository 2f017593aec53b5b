/**
 * What the editor says about a scan, in one line each (at most 120 characters): the verdict with
 * the evidence that decided it, and each finding with its numbers. The engine's full messages stay
 * in the report (the report view's findings table, `--json`); these are for diagnostics, toasts,
 * the status bar and the log.
 */
import { fixTitle } from './fix-names';
import type { Finding, NeuronScore, ScanReport, VerdictEvidence } from '../engine';

export const MAX_LINE = 120;

const num = (x: number) => (Math.abs(x) >= 1000 || (Math.abs(x) < 0.01 && x !== 0) ? x.toExponential(2) : Number(x.toPrecision(3)).toString());
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Cuts a line at a word boundary to at most `max` characters, with an ellipsis when cut. */
export function clip(text: string, max = MAX_LINE): string {
  const line = text.split('\n')[0].trim();
  if (line.length <= max) return line;
  const cut = line.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  let kept = space > max * 0.6 ? cut.slice(0, space) : cut;
  // A parenthesis the cut leaves open goes whole: "pairs (0…" says less than "pairs…".
  const open = kept.lastIndexOf('(');
  if (open > max * 0.6 && open > kept.lastIndexOf(')')) kept = kept.slice(0, open);
  return `${kept.replace(/[\s,;:(—-]+$/, '')}…`;
}

/** "pairs:patch 9.5 > 7": the statistic against the threshold it was compared with. */
export function evidenceText(e: VerdictEvidence): string {
  const op = e.direction === 'above' ? (e.value > e.threshold ? '>' : '≤') : e.value < e.threshold ? '<' : '≥';
  return `${e.method} ${num(e.value)} ${op} ${num(e.threshold)}`;
}

/** The evidence that decided the verdict: the flagged tests, else the one closest to its threshold. */
export function decisiveEvidence(report: ScanReport): VerdictEvidence[] {
  const evidence = report.evidence ?? [];
  const flagged = evidence.filter((e) => e.flagged);
  if (flagged.length) return flagged;
  const closeness = (e: VerdictEvidence) => (e.direction === 'above' ? e.value / (e.threshold || 1) : (e.threshold || 1) / Math.max(e.value, 1e-12));
  return [...evidence].sort((a, b) => closeness(b) - closeness(a)).slice(0, 1);
}

const targetsText = (targets: number[]) => (targets.length ? `target class${targets.length > 1 ? 'es' : ''} ${targets.join(', ')}` : 'target unknown');

/** The verdict in one line, e.g. "Backdoor: target class 0 (all-to-one) — pairs:patch 9.5 > 7". */
export function verdictLine(report: ScanReport): string {
  // A checkpoint refused before any analysis (a pickle that would run code): its finding is the verdict.
  const refusal = report.verdict === 'inconclusive' && report.methods.length === 0 ? report.findings.find((f) => f.severity === 'error') : undefined;
  if (refusal) return clip(`Not loaded: ${refusal.message}`);
  const evidence = decisiveEvidence(report).map(evidenceText).join('; ');
  if (report.verdict === 'backdoored') return clip(`Backdoor: ${targetsText(report.targets)}${report.attackType ? ` (${report.attackType})` : ''}${evidence ? ` — ${evidence}` : ''}`);
  // Without data only MM-BD decides, and it misses most backdoors (docs/findings/BL006.md): say so.
  if (report.verdict === 'clean') return clip(`No backdoor found${report.data ? '' : ' without data (data-free checks miss most backdoors)'}${evidence ? ` — ${evidence}` : ''}`);
  const why = report.data ? 'no detector could run on this data' : 'no clean data set, so no detector ran';
  return clip(`Inconclusive: ${why}`);
}

/** Neuron-method ids as the report knows them (methods that wrote neuron scores). */
export function neuronMethods(report: ScanReport): Set<string> {
  return new Set(report.neurons.map((n) => n.method));
}

function neuronLayerLine(f: Finding, report: ScanReport): string | undefined {
  const layer = f.location?.layer;
  if (!layer) return undefined;
  const scores: NeuronScore[] = report.neurons.filter((n) => n.method === f.method && n.layer === layer);
  if (!scores.length) return undefined;
  const flagged = scores.filter((n) => n.flagged).map((n) => n.channel);
  const direction = report.methods.find((m) => m.method === f.method)?.direction ?? 'above';
  const side = direction === 'above' ? 'above' : 'at or below';
  const head = `${f.method.toUpperCase()}: ${flagged.length} of ${scores.length} channels of ${layer} ${side} the threshold ${num(scores[0].threshold)}`;
  const list = ` (channel${flagged.length === 1 ? '' : 's'} ${flagged.join(', ')})`;
  return clip(head.length + list.length <= MAX_LINE ? head + list : `${head}${flagged.length ? ` (channel${flagged.length === 1 ? '' : 's'} ${flagged.slice(0, 6).join(', ')}, …)` : ''}`);
}

function neuronSummaryLine(f: Finding, report: ScanReport): string | undefined {
  if (f.location?.layer || !neuronMethods(report).has(f.method)) return undefined;
  const scores = report.neurons.filter((n) => n.method === f.method);
  const flagged = scores.filter((n) => n.flagged);
  const layers = new Set(flagged.map((n) => n.layer));
  if (!flagged.length) return clip(`${f.method.toUpperCase()} flagged none of ${scores.length} channels`);
  const verdict = report.verdict === 'backdoored' ? '' : '; no detector verdict, so information only';
  return clip(`${f.method.toUpperCase()} flagged ${flagged.length} of ${scores.length} channels in ${plural(layers.size, 'layer')}${verdict}`);
}

function pairLine(f: Finding, report: ScanReport): string | undefined {
  const pair = f.location?.pair;
  if (!pair) return undefined;
  const p = report.pairs.find((r) => r.source === pair.source && r.target === pair.target && r.flagged && (!f.method || (r.method ?? f.method).startsWith(f.method)));
  if (!p) return undefined;
  const threshold = report.evidence?.find((e) => e.method === p.method)?.threshold ?? report.methods.find((m) => m.method === f.method)?.threshold;
  if (p.method?.startsWith('pairs:shifts:')) {
    const moved = report.pairs.filter((r) => r.flagged && r.method === p.method).length;
    return clip(`All-to-all backdoor: one trigger moves ${moved} classes to the next (${p.method} R ${num(p.anomalyIndex)}${threshold !== undefined ? ` > ${num(threshold)}` : ''})`);
  }
  if (p.via === 'transfer') {
    const share = p.transferShare !== undefined ? `sends ${Math.round(100 * p.transferShare)}% of class ${pair.source} to ${pair.target}` : `also moves class ${pair.source}`;
    return clip(`Class pair ${pair.source} → ${pair.target}: the outliers' trigger ${share} (transfer; own index ${num(p.anomalyIndex)})`);
  }
  return clip(`Class pair ${pair.source} → ${pair.target} is an outlier: ${p.method ?? f.method} anomaly index ${num(p.anomalyIndex)}${threshold !== undefined ? ` > ${num(threshold)}` : ''} — target ${pair.target}`);
}

function labelLine(f: Finding, report: ScanReport): string | undefined {
  const label = f.location?.label;
  if (label === undefined || f.location?.pair) return undefined;
  const l = report.labels.find((r) => r.label === label && r.flagged && (!r.method || r.method.startsWith(f.method)));
  if (!l) return undefined;
  const threshold = report.evidence?.find((e) => e.method === (l.method ?? f.method))?.threshold ?? report.methods.find((m) => m.method === f.method)?.threshold;
  const over = threshold !== undefined ? ` > ${num(threshold)}` : '';
  if (l.method?.startsWith('pairs:targets:')) return clip(`Backdoor to class ${label}: its trigger is ${num(l.anomalyIndex)}× smaller than typical (${l.method} R ${num(l.anomalyIndex)}${over})`);
  return clip(`Label ${label}: ${l.method ?? f.method} anomaly index ${num(l.anomalyIndex)}${over} — target ${label}`);
}

/** A finding in one line with its numbers; the engine's message, clipped, for codes without a shorter form. */
export function findingMessage(f: Finding, report: ScanReport): string {
  const line = pairLine(f, report) ?? labelLine(f, report) ?? neuronLayerLine(f, report) ?? neuronSummaryLine(f, report);
  if (line) return line;
  // Command-line advice has an editor equivalent: the quick fix on the same line.
  const text = f.message.replace(/`backdoor-lens fix --method (\w+)`/g, (_, m: string) => `the quick fix "${fixTitle(m)}"`);
  return clip(text);
}

/** The settings that lift a limit named in an engine message: the editor setting for time, backdoor-lens.json for the rest. */
export function limitSetting(message: string): string | undefined {
  if (/\btimeLimitSeconds\b/.test(message)) return 'backdoorLens.timeLimitSeconds';
  return /\b(limits\.\w+)/.exec(message)?.[1];
}

const fileName = (path: string) => path.split(/[\\/]/).pop() ?? path;

/**
 * Why a checkpoint could not be scanned, in one line for the editor: the file named when the
 * engine's message leaves it to the caller ("is 2.1 GiB, over …"), command-line flags and exact
 * byte counts dropped, and the action ("raise …") kept when the line has to be cut.
 */
export function failureLine(failure: { code: string; message: string; file?: string }, modelPath: string): string {
  const what = failure.code === 'limit' ? 'Scan stopped' : 'Could not be scanned';
  // Byte counts beside the rounded sizes, and the flags, are for the command line and the log.
  let text = failure.message.replace(/^scan stopped:\s*/i, '').replace(/\s*\((--[^)]*|\d+ bytes)\)/g, '');
  const file = failure.file ?? modelPath;
  if (!text.includes(file) && !text.includes(fileName(file))) {
    if (file === modelPath && /^(is|has|holds) /.test(text)) text = `${fileName(file)} ${text}`;
    else if (file !== modelPath) text = `${file}: ${text}`;
  }
  const line = `${what}: ${text}`;
  const at = line.lastIndexOf('; raise ');
  if (line.length <= MAX_LINE || at < 0) return clip(line);
  // Shortened step by step: the purpose, then where the setting lives (the quick fix says), then the cause.
  const head = line.slice(0, at);
  let action = line.slice(at).replace(/ to (let it finish|load it)$/, '');
  if (head.length + action.length > MAX_LINE) action = action.replace(/ in backdoor-lens\.json\b.*$/, '');
  if (head.length + action.length <= MAX_LINE) return head + action;
  return `${clip(head, MAX_LINE - action.length)}${action}`.slice(0, MAX_LINE);
}
