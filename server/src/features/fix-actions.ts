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

/** Prune fixes in the order they are offered after the one a finding names. */
const PRUNE_ORDER = ['bnp', 'ep', 'clp', 'anp', 'fp'];

export function fixTitle(id: string): string {
  return id === 'bna' ? 'Apply BNA correction' : `Prune with ${id.toUpperCase()}`;
}

export function applyFixCommand(args: ApplyFixArgs, clientCommands: boolean, title = fixTitle(args.method)): Command {
  return { title, command: clientCommands ? ClientCommands.applyFix : ServerCommands.applyFix, arguments: [args] };
}

/** Diagnostics about the scan itself, not the model: nothing to repair. */
const NOT_MODEL_FINDINGS = new Set(['BL022', 'BL040', 'BL050']);

/** The fixes worth offering for a diagnostic, best first: BNA for a detected backdoor, the flagging method's pruning for neurons. */
export function fixesFor(diagnostic: Diagnostic, available: readonly AvailableFix[]): AvailableFix[] {
  const data = diagnostic.data as DiagnosticData | undefined;
  if (NOT_MODEL_FINDINGS.has(String(diagnostic.code))) return [];
  const order: string[] = [];
  if (diagnostic.severity === DiagnosticSeverity.Error) order.push('bna');
  else if (diagnostic.severity !== DiagnosticSeverity.Warning) return [];
  if (data?.method) order.push(data.method);
  order.push(...PRUNE_ORDER);
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
  if (report.verdict === 'backdoored' && usable('bna')) {
    lenses.push({ range: at(rendered.summaryLine), command: applyFixCommand({ uri: state.uri, method: 'bna' }, clientCommands) });
  }
  if (clientCommands) lenses.push({ range: at(rendered.summaryLine), command: { title: 'Open report', command: ClientCommands.openReport, arguments: [state.uri] } });
  for (const [layer, flags] of flagsByLayer(report.neurons)) {
    const line = rendered.layerLines.get(layer);
    if (line === undefined) continue;
    for (const f of flags) {
      if (f.flagged === 0) continue;
      const text = `${f.method.toUpperCase()}: ${f.flagged} neuron${f.flagged === 1 ? '' : 's'} flagged`;
      lenses.push({
        range: at(line),
        command: usable(f.method) ? applyFixCommand({ uri: state.uri, method: f.method }, clientCommands, `${text} — Prune`) : { title: text, command: '' },
      });
    }
  }
  return lenses;
}
