/**
 * A log of every engine job for the editor's Output channel: the settings it ran with, a line per
 * stage with the time it started at, and the outcome with per-method timings or the error.
 */
import { basename } from 'node:path';
import type { ScanReport } from '../../../engine';
import type { ScanSettings } from '../settings';
import { verdictLine } from '../../../protocol/verdict-text';

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function settingsText(s: ScanSettings): string {
  const parts = [
    s.data ? `data ${s.data}${s.dataKind === 'mixed' ? ' (mixed)' : ''}` : 'no data (data-free methods only)',
    `methods ${s.methods?.length ? s.methods.join(', ') : 'default'}`,
    `threshold ${s.threshold ?? 3}`,
    `provider ${s.executionProvider ?? 'cpu'}`,
    s.timeLimitSeconds ? `time limit ${s.timeLimitSeconds} s` : 'no time limit',
    ...(s.methodOptions && Object.keys(s.methodOptions).length ? [`options ${JSON.stringify(s.methodOptions)}`] : []),
    ...(s.configPath ? [`settings file ${s.configPath}`] : []),
  ];
  return parts.join(', ');
}

export class JobLog {
  private readonly requested = Date.now();
  /** When the job left the queue; stage times count from here. */
  private started = this.requested;
  private step?: string;
  private stepStarted = this.started;

  /** `what`: e.g. 'scan model.onnx' or 'fix bna model.onnx'. */
  constructor(
    private readonly write: (line: string) => void,
    kind: string,
    path: string,
  ) {
    this.what = `${kind} ${basename(path)}`;
  }

  private readonly what: string;

  private line(text: string): void {
    this.write(`${this.what}: ${text}`);
  }

  begin(settings: ScanSettings): void {
    this.line(`started — ${settingsText(settings)}`);
  }

  /** The job left the queue for the engine thread. */
  running(): void {
    this.started = this.stepStarted = Date.now();
    const waited = this.started - this.requested;
    if (waited >= 1000) this.line(`waited ${seconds(waited)} for the job before it`);
  }

  /** A stage starts (called on every progress report; logs only when the stage changes). */
  stage(step: string | undefined, text: string): void {
    const key = step ?? text;
    if (key === this.step) return;
    const now = Date.now();
    const previous = this.step ? ` (previous stage ${seconds(now - this.stepStarted)})` : '';
    this.step = key;
    this.stepStarted = now;
    this.line(`+${seconds(now - this.started)} ${step ? `[${step}] ` : ''}${text}${previous}`);
  }

  cached(): void {
    this.line('answered from the cache (same content and settings as an earlier scan)');
  }

  done(report: ScanReport): void {
    const ran = report.methods.filter((m) => m.status === 'ran').map((m) => `${m.method} ${seconds(m.ms)}`);
    const skipped = report.methods.filter((m) => m.status !== 'ran').map((m) => `${m.method} ${m.status}${m.reason ? ` (${m.reason})` : ''}`);
    this.line(`done in ${seconds(Date.now() - this.started)} — ${verdictLine(report)}; ${ran.join(' · ') || 'no method ran'}${skipped.length ? `; ${skipped.join('; ')}` : ''}`);
  }

  finished(text: string): void {
    this.line(`done in ${seconds(Date.now() - this.started)} — ${text}`);
  }

  failed(code: string, message: string): void {
    this.line(`${code === 'cancelled' ? 'cancelled' : `failed (${code})`} after ${seconds(Date.now() - this.started)}${code === 'cancelled' ? '' : ` — ${message}`}`);
  }
}
