/**
 * Checkpoints as documents: the state of each model file the server was asked about (scanning,
 * scanned, failed, invalidated), its last scan, and a cache of scan results keyed by the file's
 * content hash and the settings, so an unchanged file is never scanned twice.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream } from 'node:fs';
import { openRegular, type ScanReport } from '../../engine';
import type { FixSummary } from '../../protocol/lsp';
import type { AvailableFix, CheckpointStatus, TriggerView } from '../../protocol/report-view';
import type { ImageBytes, ModelOutline } from './jobs/messages';
import type { JobFailure } from './jobs/worker-host';
import { renderOutline, type RenderedOutline } from './features/outline';

export interface ScanOutcome {
  hash: string;
  settingsKey: string;
  report: ScanReport;
  images: ImageBytes[];
  triggers: TriggerView[];
  triggersTotal: number;
  outline: ModelOutline;
  fixes: AvailableFix[];
}

export interface CheckpointState {
  path: string;
  uri: string;
  status: CheckpointStatus;
  /** Stage text while scanning. */
  stage?: string;
  fraction?: number;
  /** Seconds left while scanning, estimated from the progress so far. */
  eta?: number;
  outcome?: ScanOutcome;
  /** The outline when the model was described but not scanned. */
  outline?: ModelOutline;
  fixes?: AvailableFix[];
  failure?: JobFailure;
  /** Set when a fix wrote this file. */
  fix?: FixSummary;
  /** Fixes applied to this content, by method: their measured effect titles the next offers. */
  tried?: Map<string, FixSummary>;
  /** Content hash the state belongs to; a change on disk invalidates it. */
  hash?: string;
  rendered?: RenderedOutline;
}

/** The SHA-256 of a regular file, read up to the size it had when opened (a FIFO or device is refused). */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let file: { fd: number; size: number };
    try {
      file = openRegular(path, { what: 'model' });
    } catch (e) {
      reject(e);
      return;
    }
    const h = createHash('sha256');
    if (file.size === 0) {
      closeSync(file.fd);
      resolve(h.digest('hex'));
      return;
    }
    createReadStream(path, { fd: file.fd, start: 0, end: file.size - 1, autoClose: true })
      .on('data', (chunk) => h.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export class CheckpointStore {
  private readonly states = new Map<string, CheckpointState>();
  private readonly cache = new Map<string, ScanOutcome>();

  constructor(private readonly cacheSize = 32) {}

  get(path: string): CheckpointState | undefined {
    return this.states.get(path);
  }

  ensure(path: string, uri: string): CheckpointState {
    let s = this.states.get(path);
    if (!s) {
      s = { path, uri, status: 'not-scanned' };
      this.states.set(path, s);
    }
    return s;
  }

  delete(path: string): void {
    this.states.delete(path);
  }

  all(): CheckpointState[] {
    return [...this.states.values()];
  }

  cached(hash: string, settingsKey: string): ScanOutcome | undefined {
    const key = `${hash}\n${settingsKey}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
    }
    return hit;
  }

  remember(outcome: ScanOutcome): void {
    const key = `${outcome.hash}\n${outcome.settingsKey}`;
    this.cache.delete(key);
    this.cache.set(key, outcome);
    while (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
  }

  /** The outline as rendered for the state's current results (cached until they change). */
  rendered(state: CheckpointState): RenderedOutline | undefined {
    const outline = state.outcome?.outline ?? state.outline;
    if (!outline) return undefined;
    state.rendered ??= renderOutline(outline, state.outcome?.report);
    return state.rendered;
  }

  /** Replaces what the state shows; the rendered outline follows. */
  update(state: CheckpointState, patch: Partial<CheckpointState>): void {
    Object.assign(state, patch);
    if ('outcome' in patch || 'outline' in patch) state.rendered = undefined;
  }
}
