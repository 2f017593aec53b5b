/**
 * Which fixes to offer for a finding, and the code actions and lenses that run them. Only fixes
 * in the engine's registry are offered; one that cannot apply is shown disabled with the reason.
 */
import { CodeActionKind, DiagnosticSeverity, type CodeAction, type CodeLens, type Command, type Diagnostic } from 'vscode-languageserver';
import type { AvailableFix } from '../../../protocol/report-view';
import { ClientCommands, ServerCommands, type ApplyFixArgs } from '../../../protocol/lsp';
import type { CheckpointState } from '../checkpoints';
import type { DiagnosticData } from './diagnostics';
import { flagsByLayer } from './outline';

/** Fixes in the order they are offered after 'auto' and the one a finding names. */
const FIX_ORDER = ['bna', 'unlearn', 'bnp', 'ep', 'clp', 'anp', 'fp'];

export function fixTitle(id: string): string {
  if (id === 'auto') return 'Repair: try each fix, keep the best';
  if (id === 'bna') return 'Apply BNA correction';
  if (id === 'unlearn') return 'Unlearn the reversed trigger';
  return `Prune with ${id.toUpperCase()}`;
}

export function applyFixCommand(args: ApplyFixArgs, clientCommands: boolean, title = fixTitle(args.method)): Command {
  return { title, command: clientCommands ? ClientCommands.applyFix : ServerCommands.applyFix, arguments: [args] };
}

/** Diagnostics about the scan itself, not the model: nothing to repair. */
const NOT_MODEL_FINDINGS = new Set(['BL022', 'BL040', 'BL050']);

/**
 * The fixes worth offering for a diagnostic, best first: 'auto' (every applicable fix, cheapest
 * first, keeping the one that measures best), then the flagging method's own, then the rest.
 */
export function fixesFor(diagnostic: Diagnostic, available: readonly AvailableFix[]): AvailableFix[] {
  const data = diagnostic.data as DiagnosticData | undefined;
  if (NOT_MODEL_FINDINGS.has(String(diagnostic.code))) return [];
  if (diagnostic.severity !== DiagnosticSeverity.Error && diagnostic.severity !== DiagnosticSeverity.Warning) return [];
  const order: string[] = ['auto'];
  if (data?.method) order.push(data.method);
  order.push(...FIX_ORDER);
  const byId = new Map(available.map((f) => [f.id, f]));
  return [...new Set(order)].filter((id) => byId.has(id)).map((id) => byId.get(id)!);
}

export function codeActionsFor(diagnostics: readonly Diagnostic[], state: CheckpointState | undefined, clientCommands: boolean): CodeAction[] {
  const available = state?.outcome?.fixes ?? state?.fixes ?? [];
  const actions: CodeAction[] = [];
  const offered = new Set<string>();
  for (const d of diagnostics) {
    const data = d.data as DiagnosticData | undefined;
    if (!data?.checkpoint) continue;
    fixesFor(d, available).forEach((fix, i) => {
      if (offered.has(fix.id)) return;
      offered.add(fix.id);
      actions.push({
        title: fixTitle(fix.id),
        kind: CodeActionKind.QuickFix,
        diagnostics: [d],
        isPreferred: i === 0 && !fix.notApplicable,
        ...(fix.notApplicable ? { disabled: { reason: fix.notApplicable } } : { command: applyFixCommand({ uri: data.checkpoint, method: fix.id }, clientCommands) }),
      });
    });
  }
  return actions;
}

/** Lenses on the outline: per layer "BNP: 12 neurons flagged — Prune", and fixes on the verdict line. */
export function codeLensesFor(state: CheckpointState, rendered: { summaryLine: number; layerLines: Map<string, number> }, clientCommands: boolean): CodeLens[] {
  const lenses: CodeLens[] = [];
  const at = (line: number) => ({ start: { line, character: 0 }, end: { line, character: 0 } });
  const report = state.outcome?.report;
  const fixes = new Map((state.outcome?.fixes ?? state.fixes ?? []).map((f) => [f.id, f]));
  const usable = (id: string) => fixes.has(id) && !fixes.get(id)!.notApplicable;
  if (!report) {
    lenses.push({ range: at(rendered.summaryLine), command: { title: 'Scan for backdoor', command: clientCommands ? ClientCommands.scan : ServerCommands.scan, arguments: [state.uri] } });
    return lenses;
  }
  if (report.verdict === 'backdoored' && usable('auto')) lenses.push({ range: at(rendered.summaryLine), command: applyFixCommand({ uri: state.uri, method: 'auto' }, clientCommands) });
  if (report.verdict === 'backdoored' && usable('bna')) {
    lenses.push({ range: at(rendered.summaryLine), command: applyFixCommand({ uri: state.uri, method: 'bna' }, clientCommands) });
  }
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
      lenses.push({
        range: at(line),
        command: usable(f.method) ? applyFixCommand({ uri: state.uri, method: f.method, layer }, clientCommands, `${text} — Prune ${layer} channel${channels.length === 1 ? '' : 's'} ${shown}`) : { title: text, command: '' },
      });
    }
  }
  return lenses;
}
