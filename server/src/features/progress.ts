/**
 * LSP work-done progress for engine jobs: on the token the client sent with its request, or on one
 * the server creates (scans started by a command), whose cancellation aborts the job.
 */
import type { Connection, WorkDoneProgressReporter } from 'vscode-languageserver';

export interface JobProgress {
  /** fraction in [0, 1], stage text such as "pairs: trigger reversal step 40/1500 …". */
  report(fraction: number, stage: string): void;
  done(): void;
}

export async function startProgress(
  connection: Connection,
  options: { title: string; token?: string | number; serverCreated: boolean; abort: AbortController },
): Promise<JobProgress> {
  let reporter: WorkDoneProgressReporter | undefined;
  if (options.token !== undefined) reporter = connection.window.attachWorkDoneProgress(options.token);
  else if (options.serverCreated) {
    const created = await connection.window.createWorkDoneProgress();
    created.token.onCancellationRequested(() => options.abort.abort());
    reporter = created;
  }
  reporter?.begin(options.title, 0, 'queued', true);
  let lastPercent = -1;
  let lastStage = '';
  return {
    report(fraction, stage) {
      const percent = Math.round(100 * Math.min(Math.max(fraction, 0), 1));
      if (percent === lastPercent && stage === lastStage) return;
      lastPercent = percent;
      lastStage = stage;
      reporter?.report(percent, stage);
    },
    done() {
      reporter?.done();
    },
  };
}
