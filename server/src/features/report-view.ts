/** What the report view shows for a checkpoint: its state, last report, trigger views, images and fix offers. */
import { basename } from 'node:path';
import type { ReportView } from '../../../protocol/report-view';
import type { CheckpointChange } from '../../../protocol/lsp';
import type { CheckpointState } from '../checkpoints';
import { fileUri } from '../uris';
import { offersOf } from './fix-actions';
import { clip, failureLine, verdictLine } from '../../../protocol/verdict-text';

export function reportViewOf(path: string, state: CheckpointState | undefined): ReportView {
  const outcome = state?.outcome;
  const busy = state?.status === 'scanning' || state?.status === 'queued';
  return {
    uri: fileUri(path),
    fileName: basename(path),
    status: state?.status ?? 'not-scanned',
    ...(state?.status === 'failed' ? { message: state.failure?.message } : state?.stage ? { message: state.stage, fraction: state.fraction } : {}),
    ...(busy && state?.eta !== undefined ? { etaSeconds: state.eta } : {}),
    ...(outcome ? { report: outcome.report } : {}),
    images: (outcome?.images ?? []).map((i) => ({ kind: i.kind, name: i.name, ...(i.label !== undefined ? { label: i.label } : {}), ...(i.pair ? { pair: i.pair } : {}), dataUri: `data:image/png;base64,${Buffer.from(i.png).toString('base64')}` })),
    triggers: outcome?.triggers ?? [],
    ...(outcome && outcome.triggersTotal > outcome.triggers.length ? { triggersTotal: outcome.triggersTotal } : {}),
    ...(state?.fix ? { fix: state.fix } : {}),
    fixes: outcome?.fixes ?? state?.fixes ?? [],
    offers: offersOf(state),
  };
}

/** The change notification: status, verdict and a one-line summary for the status bar and decorations. */
export function changeOf(state: CheckpointState): CheckpointChange {
  const report = state.outcome?.report;
  const summary =
    state.status === 'failed'
      ? failureLine(state.failure ?? { code: 'failed', message: 'unknown error' }, state.path)
      : state.status === 'scanning' || state.status === 'queued'
        ? clip(`${Math.round(100 * (state.fraction ?? 0))}% ${state.stage ?? 'queued'}`)
        : report
          ? verdictLine(report)
          : undefined;
  return {
    uri: state.uri,
    status: state.status,
    ...(report ? { verdict: report.verdict, noData: !report.data } : {}),
    ...(summary ? { summary } : {}),
  };
}
