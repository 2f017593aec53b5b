/**
 * Scans and fixes of checkpoints, independent of the LSP wiring: resolves settings, answers from
 * the content-hash cache, queues engine jobs, tracks each checkpoint's state and tells the host
 * when something it shows has changed.
 */
import { existsSync } from 'node:fs';
import { asBackdoorLensError, removeTempFiles, fixOutputs, Eta, withEta, type FixOutputs } from '../../engine';
import { FIX_IDS } from '../../protocol/fix-names';
import type { FixSummary, ScanSummary } from '../../protocol/lsp';
import { CheckpointStore, sha256File, type CheckpointState } from './checkpoints';
import { possibleLabels } from './fix-output';
import type { FixJobResult, ScanJobResult, DescribeJobResult } from './jobs/messages';
import type { JobQueue } from './jobs/queue';
import { cancelled, JobFailure } from './jobs/worker-host';
import type { JobProgress } from './features/progress';
import { JobLog } from './features/scan-log';
import { verdictLine } from '../../protocol/verdict-text';
import { settingsKey, type ScanSettings } from './settings';
import { fileUri, pathOf } from './uris';

export interface ServiceHost {
  settingsFor(path: string): Promise<ScanSettings>;
  /** Diagnostics, report views and lenses of this checkpoint need refreshing. */
  changed(state: CheckpointState): void;
  progress(title: string, abort: AbortController): Promise<JobProgress>;
  /** A line for the scan log (the editor's Output channel). */
  log(line: string): void;
}

export interface JobOptions {
  signal?: AbortSignal;
  progress?: (abort: AbortController) => Promise<JobProgress>;
}

function failureOf(e: unknown): JobFailure {
  if (e instanceof JobFailure) return e;
  const err = asBackdoorLensError(e);
  return new JobFailure(err.code, err.message, err.file);
}

export class CheckpointService {
  readonly store = new CheckpointStore();
  private readonly inflight = new Map<string, Promise<ScanSummary>>();
  /** Output paths of the fixes under way. */
  private readonly claimed = new Set<string>();

  constructor(
    private readonly queue: JobQueue,
    private readonly host: ServiceHost,
  ) {}

  /** Scans a checkpoint (or serves the cached result for its content); never rejects except on cancellation. */
  scan(uri: string, options: JobOptions & { force?: boolean } = {}): Promise<ScanSummary> {
    const path = pathOf(uri);
    const running = this.inflight.get(path);
    if (running && !options.force) return running;
    const p = this.runScan(path, options).finally(() => {
      if (this.inflight.get(path) === p) this.inflight.delete(path);
    });
    this.inflight.set(path, p);
    return p;
  }

  private async runScan(path: string, options: JobOptions & { force?: boolean }): Promise<ScanSummary> {
    const state = this.store.ensure(path, fileUri(path));
    const log = new JobLog((l) => this.host.log(l), 'scan', path);
    let settings: ScanSettings, hash: string;
    try {
      if (!existsSync(path)) throw new JobFailure('bad-file', 'no such file', path);
      settings = await this.host.settingsFor(path);
      hash = await sha256File(path);
    } catch (e) {
      const failure = failureOf(e);
      log.failed(failure.code, failure.message);
      return this.fail(state, failure);
    }
    const key = settingsKey(settings);
    const hit = options.force ? undefined : this.store.cached(hash, key);
    if (hit) {
      log.cached();
      this.store.update(state, { status: 'done', outcome: hit, hash, failure: undefined, stage: undefined, fraction: undefined, eta: undefined });
      this.host.changed(state);
      return this.summary(state, true);
    }
    log.begin(settings);

    const abort = new AbortController();
    options.signal?.addEventListener('abort', () => abort.abort(), { once: true });
    const progress = await (options.progress ?? ((a) => this.host.progress('Backdoor Lens: scanning', a)))(abort);
    const previous = { status: state.status, outcome: state.outcome, hash: state.hash };
    this.store.update(state, { status: 'queued', stage: 'queued', fraction: 0 });
    this.host.changed(state);
    let lastNotified = 0;
    let eta: Eta | undefined;
    try {
      const result = (await this.queue.run(
        { kind: 'scan', path, settings },
        {
          signal: abort.signal,
          onStart: () => {
            log.running();
            eta = new Eta();
            this.store.update(state, { status: 'scanning', stage: 'Starting' });
            this.host.changed(state);
          },
          onProgress: (fraction, stage, step) => {
            log.stage(step, stage);
            const left = eta?.update(fraction);
            progress.report(fraction, withEta(stage, left));
            this.store.update(state, { fraction, stage, eta: left });
            // Report views follow the stage text; twice a second is enough for a person.
            if (Date.now() - lastNotified > 500) {
              lastNotified = Date.now();
              this.host.changed(state);
            }
          },
        },
      )) as ScanJobResult;
      const outcome = { hash, settingsKey: key, report: result.report, images: result.images, triggers: result.triggers, triggersTotal: result.triggersTotal, outline: result.outline, fixes: result.fixes };
      this.store.remember(outcome);
      log.done(result.report);
      const tried = state.hash === hash ? state.tried : undefined;
      this.store.update(state, { status: 'done', outcome, hash, failure: undefined, stage: undefined, fraction: undefined, eta: undefined, outline: result.outline, fixes: result.fixes, tried });
      this.host.changed(state);
      return this.summary(state, false);
    } catch (e) {
      const failure = failureOf(e);
      log.failed(failure.code, failure.message);
      if (failure.code === 'cancelled') {
        // A cancelled rescan keeps the results it would have replaced.
        const restored = previous.status === 'done' && previous.hash === hash;
        this.store.update(state, restored ? { status: 'done', outcome: previous.outcome, stage: undefined, fraction: undefined, eta: undefined } : { status: 'cancelled', outcome: undefined, stage: undefined, fraction: undefined, eta: undefined });
        this.host.changed(state);
        throw cancelled();
      }
      return this.fail(state, failure);
    } finally {
      progress.done();
    }
  }

  private fail(state: CheckpointState, failure: JobFailure): ScanSummary {
    this.store.update(state, { status: 'failed', failure, outcome: undefined, stage: undefined, fraction: undefined, eta: undefined });
    this.host.changed(state);
    return this.summary(state, false);
  }

  summary(state: CheckpointState, cached: boolean): ScanSummary {
    if (state.status === 'failed' || !state.outcome) {
      const error = state.failure ? { code: state.failure.code, ...(state.failure.file ? { file: state.failure.file } : {}) } : undefined;
      return { uri: state.uri, status: 'failed', codes: [], cached, message: state.failure?.message ?? 'not scanned', ...(error ? { error } : {}) };
    }
    const r = state.outcome.report;
    const codes = r.findings.map((f) => f.code);
    return { uri: state.uri, status: 'done', verdict: r.verdict, targets: r.targets, codes, cached, message: verdictLine(r), ...(r.data ? {} : { noData: true }) };
  }

  /** The outline of a checkpoint that has not been scanned, for its outline document. */
  async describe(uri: string): Promise<CheckpointState> {
    const path = pathOf(uri);
    const state = this.store.ensure(path, fileUri(path));
    if (state.outcome || state.outline) return state;
    try {
      const settings = await this.host.settingsFor(path);
      const result = (await this.queue.run({ kind: 'describe', path, settings })) as DescribeJobResult;
      this.store.update(state, { outline: result.outline, fixes: result.fixes });
    } catch (e) {
      if (state.status === 'not-scanned') this.store.update(state, { status: 'failed', failure: failureOf(e) });
      this.host.changed(state);
    }
    return state;
  }

  /**
   * Applies a fix and writes the purified model beside the input; rejects with the engine's error.
   * Each fix claims its output paths until it ends, so fixes requested together (of one file or
   * of files whose outputs would collide) write distinct files; one that fails, is cancelled or
   * has its worker terminated midway leaves no temporary file behind.
   */
  async fix(uri: string, method: string, options: JobOptions & { layer?: string } = {}): Promise<FixSummary> {
    const path = pathOf(uri);
    const state = this.store.ensure(path, fileUri(path));
    const settings = await this.host.settingsFor(path);
    const format = state.outcome?.outline.format ?? state.outline?.format ?? (/\.onnx$/i.test(path) ? 'onnx' : 'pytorch');
    // The name depends on the outcome, known only at the end: claim one per outcome it may have.
    const outputs: Record<string, FixOutputs> = {};
    const targets: string[] = [];
    const known = (state.outcome?.fixes ?? state.fixes ?? []).map((f) => f.id);
    for (const label of possibleLabels(method, known.length ? known : FIX_IDS)) {
      outputs[label] = fixOutputs(path, label, format !== 'onnx', (p) => this.claimed.has(p) || existsSync(p));
      for (const t of [outputs[label].onnx, ...(outputs[label].safetensors ? [outputs[label].safetensors!] : [])]) (targets.push(t), this.claimed.add(t));
    }
    try {
      return await this.runFix(path, state, method, options.layer, settings, outputs, options);
    } catch (e) {
      for (const t of targets) removeTempFiles(t);
      throw e;
    } finally {
      for (const t of targets) this.claimed.delete(t);
    }
  }

  private async runFix(path: string, state: CheckpointState, method: string, layer: string | undefined, settings: ScanSettings, outputs: Record<string, FixOutputs>, options: JobOptions): Promise<FixSummary> {
    const abort = new AbortController();
    options.signal?.addEventListener('abort', () => abort.abort(), { once: true });
    const progress = await (options.progress ?? ((a) => this.host.progress(`Backdoor Lens: ${method} fix`, a)))(abort);
    const log = new JobLog((l) => this.host.log(l), `fix ${method}`, path);
    log.begin(settings);
    let eta = new Eta();
    try {
      const result = (await this.queue
        .run(
          { kind: 'fix', path, method, ...(layer ? { layer } : {}), settings, outputs },
          {
            signal: abort.signal,
            onStart: () => {
              log.running();
              eta = new Eta();
            },
            onProgress: (f, s, step) => {
              log.stage(step, s);
              progress.report(f, withEta(s, eta.update(f)));
            },
          },
        )
        .catch((e) => {
          const failure = failureOf(e);
          log.failed(failure.code, failure.message);
          throw failure;
        })) as FixJobResult;
      const summary: FixSummary = { source: state.uri, outputs: result.written.map(fileUri), ...result.summary };
      log.finished(`${summary.outcome}: ${result.written.length ? `wrote ${result.written.join(', ')}` : 'wrote nothing'}`);
      state.tried = new Map(state.tried ?? []).set(method, summary);
      this.host.changed(state);
      if (result.written.length === 0) return summary;
      const out = this.store.ensure(result.written[0], summary.outputs[0]);
      const hash = await sha256File(result.written[0]);
      // The hash ties the fix summary to these bytes: the watcher's 'created' event must not drop it.
      this.store.update(out, { fix: summary, hash });
      if (result.rescan) {
        // The rescan that confirmed the removal is this file's scan: the editor's scan of it is served from it.
        const scanned = { hash, settingsKey: settingsKey(settings), ...result.rescan };
        this.store.remember(scanned);
        this.store.update(out, { status: 'done', outcome: scanned, outline: scanned.outline, fixes: scanned.fixes, failure: undefined });
      }
      this.host.changed(out);
      return summary;
    } finally {
      progress.done();
    }
  }

  /** The file changed or disappeared on disk: its results no longer describe it. */
  async invalidate(uri: string, deleted: boolean): Promise<void> {
    const path = pathOf(uri);
    const state = this.store.get(path);
    if (!state) return;
    if (deleted || !existsSync(path)) {
      this.store.update(state, { status: 'stale', outcome: undefined, outline: undefined, fixes: undefined, failure: undefined, fix: undefined, tried: undefined });
      this.host.changed(state);
      this.store.delete(path);
      return;
    }
    let hash: string | undefined;
    try {
      hash = await sha256File(path);
    } catch {
      hash = undefined;
    }
    if (hash && hash === state.hash) return;
    this.store.update(state, { status: 'stale', outcome: undefined, outline: undefined, fixes: undefined, failure: undefined, fix: undefined, tried: undefined, hash });
    if (hash) {
      // Back to content scanned before (a revert): its results apply again.
      const settings = await this.host.settingsFor(path).catch(() => undefined);
      const hit = settings && this.store.cached(hash, settingsKey(settings));
      if (hit) this.store.update(state, { status: 'done', outcome: hit, outline: hit.outline, fixes: hit.fixes });
    }
    this.host.changed(state);
  }
}
