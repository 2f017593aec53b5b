/**
 * The code actions and lenses that run fixes, and the actions that unblock a scan (choose data,
 * raise a limit). Only fixes that can act on what the last scan found are offered (fix-offers.ts);
 * their titles carry the expected effect and cost.
 */
import { CodeActionKind, DiagnosticSeverity, type CodeAction, type CodeLens, type Command, type Diagnostic } from 'vscode-languageserver';
import type { FixOffer } from '../../../protocol/report-view';
import { ClientCommands, ServerCommands, type ApplyFixArgs } from '../../../protocol/lsp';
import type { CheckpointState } from '../checkpoints';
import type { DiagnosticData } from './diagnostics';
import { fixOffers } from './fix-offers';
import { flagsByLayer } from './outline';

export function applyFixCommand(args: ApplyFixArgs, clientCommands: boolean, title: string): Command {
  return { title, command: clientCommands ? ClientCommands.applyFix : ServerCommands.applyFix, arguments: [args] };
}

/** The offers for a checkpoint's last scan, best first. */
export function offersOf(state: CheckpointState | undefined): FixOffer[] {
  if (!state) return [];
  return fixOffers(state.outcome?.fixes ?? state.fixes ?? [], state.outcome?.report, state.tried);
}

/** The fixes worth offering for a diagnostic, best first: trigger fixes for a backdoor finding, the flagging method's pruning for its neurons. */
export function fixesFor(diagnostic: Diagnostic, offers: readonly FixOffer[]): FixOffer[] {
  const data = diagnostic.data as DiagnosticData | undefined;
  if (data?.kind && data.kind !== 'finding' && data.kind !== 'verdict') return [];
  const helpful = offers.filter((o) => o.helps);
  if (diagnostic.severity === DiagnosticSeverity.Error) return helpful;
  // A neuron finding: its own method's pruning, behind the trigger fixes when the scan found a backdoor.
  const own = helpful.find((o) => o.id === data?.method);
  return own ? [own] : [];
}

/** Actions that remove what stopped or limited the scan. VS Code commands, so only for the VS Code client. */
function unblockActions(d: Diagnostic, data: DiagnosticData): CodeAction[] {
  const action = (title: string, command: string, args: unknown[]): CodeAction => ({ title, kind: CodeActionKind.QuickFix, diagnostics: [d], isPreferred: true, command: { title, command, arguments: args } });
  switch (data.kind) {
    case 'needs-data':
      return [action('Choose clean data…', ClientCommands.chooseData, [data.checkpoint])];
    case 'limit':
      // The time limit is an editor setting; the load and memory limits live in backdoor-lens.json.
      if (data.setting?.startsWith('limits.')) return [action(`Raise ${data.setting} in backdoor-lens.json…`, ClientCommands.openConfig, [data.checkpoint])];
      return [action('Raise the time limit (backdoorLens.timeLimitSeconds)…', 'workbench.action.openSettings', ['backdoorLens.timeLimitSeconds'])];
    case 'failed':
      return data.dataFile ? [action('Choose other clean data…', ClientCommands.chooseData, [data.checkpoint])] : [action('Show the scan log', ClientCommands.showLog, [])];
    default:
      return [];
  }
}

export function codeActionsFor(diagnostics: readonly Diagnostic[], state: CheckpointState | undefined, clientCommands: boolean): CodeAction[] {
  const offers = offersOf(state);
  const actions: CodeAction[] = [];
  const offered = new Set<string>();
  for (const d of diagnostics) {
    const data = d.data as DiagnosticData | undefined;
    if (!data?.checkpoint) continue;
    if (clientCommands) {
      for (const a of unblockActions(d, data)) {
        if (offered.has(a.title)) continue;
        offered.add(a.title);
        actions.push(a);
      }
    }
    fixesFor(d, offers).forEach((fix, i) => {
      if (offered.has(fix.id)) return;
      offered.add(fix.id);
      actions.push({
        title: fix.title,
        kind: CodeActionKind.QuickFix,
        diagnostics: [d],
        isPreferred: i === 0 && actions.length === 0,
        command: applyFixCommand({ uri: data.checkpoint, method: fix.id }, clientCommands, fix.title),
      });
    });
  }
  return actions;
}

/** Lenses on the outline: the best fix on the verdict line, and per layer "BNP: 12 neurons flagged — Prune". */
export function codeLensesFor(state: CheckpointState, rendered: { summaryLine: number; layerLines: Map<string, number> }, clientCommands: boolean): CodeLens[] {
  const lenses: CodeLens[] = [];
  const at = (line: number) => ({ start: { line, character: 0 }, end: { line, character: 0 } });
  const report = state.outcome?.report;
  const scan = { title: 'Scan for backdoor', command: clientCommands ? ClientCommands.scan : ServerCommands.scan, arguments: [state.uri] };
  if (!report) {
    lenses.push({ range: at(rendered.summaryLine), command: scan });
    return lenses;
  }
  const offers = offersOf(state);
  const byId = new Map(offers.map((o) => [o.id, o]));
  const best = offers.find((o) => o.helps && o.basis === 'trigger');
  if (best) lenses.push({ range: at(rendered.summaryLine), command: applyFixCommand({ uri: state.uri, method: best.id }, clientCommands, best.title) });
  if (clientCommands && !report.data) lenses.push({ range: at(rendered.summaryLine), command: { title: 'Choose clean data…', command: ClientCommands.chooseData, arguments: [state.uri] } });
  if (clientCommands) lenses.push({ range: at(rendered.summaryLine), command: { title: 'Open report', command: ClientCommands.openReport, arguments: [state.uri] } });
  const flaggedChannels = new Map<string, number[]>();
  for (const n of report.neurons) if (n.flagged) flaggedChannels.set(`${n.method}\n${n.layer}`, [...(flaggedChannels.get(`${n.method}\n${n.layer}`) ?? []), n.channel]);
  for (const [layer, flags] of flagsByLayer(report.neurons)) {
    const line = rendered.layerLines.get(layer);
    if (line === undefined) continue;
    for (const f of flags) {
      if (f.flagged === 0) continue;
      const text = `${f.method.toUpperCase()}: ${f.flagged} neuron${f.flagged === 1 ? '' : 's'} flagged`;
      // The lens prunes exactly what it names: this layer's flagged channels, nothing elsewhere.
      const channels = (flaggedChannels.get(`${f.method}\n${layer}`) ?? []).sort((a, b) => a - b);
      const shown = channels.length > 8 ? `${channels.slice(0, 8).join(', ')}, … (${channels.length})` : channels.join(', ');
      const offer = byId.get(f.method);
      lenses.push({
        range: at(line),
        command: offer?.helps ? applyFixCommand({ uri: state.uri, method: f.method, layer }, clientCommands, `${text} — Prune ${layer} channel${channels.length === 1 ? '' : 's'} ${shown}`) : { title: text, command: '' },
      });
    }
  }
  return lenses;
}
