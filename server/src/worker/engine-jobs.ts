/**
 * The engine work the server hands to its worker thread: scan, describe, fix. Keeps the outputs
 * of recent scans (reversed triggers and the like live only in memory) so a fix that follows a
 * scan of the same content reuses them.
 */
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { analyses, AUTO, fixes, outputLabel, refusedOutline, refusedScanReport, Runtime, Session, triggerViews, UnsafeCheckpointError, writeFilesAtomic, type AnalysisOutput, type Dataset, type FixOutputs, type LoadedModel, type ScanReport, type ScanResult, type TriggeredSet } from '../../../engine';
import type { AvailableFix } from '../../../protocol/report-view';
import type { DescribeJobResult, FixJobResult, JobRequest, JobResult, ScanJobResult } from '../jobs/messages';
import { settingsKey, type ScanSettings } from '../settings';

export interface JobContext {
  signal: AbortSignal;
  /** fraction in [0, 1]; the stage as a person reads it; `step` names the stage for logs ('load-model', an analysis id). */
  progress(fraction: number, stage: string, step?: string): void;
}

interface RememberedScan {
  report: ScanReport;
  outputs: Map<string, AnalysisOutput>;
}

const dataNeeds: Record<string, string> = {
  clean: 'a clean data set',
  labelled: 'a labelled clean data set',
  mixed: "a possibly poisoned data set (dataKind 'mixed')",
};

export class EngineJobs {
  private readonly runtimes = new Map<string, Runtime>();
  private readonly scans = new Map<string, RememberedScan>();

  async run(job: JobRequest, ctx: JobContext): Promise<JobResult> {
    try {
      switch (job.kind) {
        case 'scan':
          return await this.scan(job.path, job.settings, ctx);
        case 'describe':
          return await this.describe(job.path, job.settings);
        case 'fix':
          return await this.fix(job.path, job.method, job.layer, job.settings, job.outputs, ctx);
      }
    } finally {
      // Every graph a job ran (the model, its gradient and gated variants) holds a compiled session
      // and its memory arena; kept across jobs they would pile up with each model the editor scans.
      await this.dispose();
    }
  }

  /** Compiled sessions held between jobs: none, since each job releases its own. */
  get cachedSessions(): number {
    return [...this.runtimes.values()].reduce((n, r) => n + r.cachedSessions, 0);
  }

  async dispose(): Promise<void> {
    for (const r of this.runtimes.values()) await r.dispose();
    this.runtimes.clear();
  }

  /** The job's engine session on the worker's runtime for these settings. */
  private session(s: ScanSettings): Session {
    // Unless configured, every core: the worker is its own process, started below the language
    // server's priority (worker-host.ts), so the server and the editor keep answering.
    const threads = s.threads || availableParallelism();
    const key = `${s.executionProvider ?? 'cpu'}:${threads}`;
    let r = this.runtimes.get(key);
    if (!r) {
      r = new Runtime({ executionProvider: s.executionProvider, threads });
      this.runtimes.set(key, r);
    }
    const optionsSource = s.configPath ? `backdoorLens.methodOptions or ${s.configPath}` : 'backdoorLens.methodOptions';
    return new Session(s, { runtime: r, optionsSource });
  }

  private availableFixes(model: LoadedModel, s: ScanSettings): AvailableFix[] {
    const each = this.eachFix(model, s);
    const usable = each.filter((f) => !f.notApplicable).map((f) => f.id);
    const auto: AvailableFix = { id: AUTO, basis: 'trigger', title: `Repair: try ${usable.join(', ') || 'the fixes'} cheapest first, keep the best`, ...(usable.length ? {} : { notApplicable: 'no fix applies to this model with these settings' }) };
    return [auto, ...each];
  }

  private eachFix(model: LoadedModel, s: ScanSettings): AvailableFix[] {
    return fixes.map((f) => {
      let why = f.notApplicable?.(model);
      if (!why && f.needs !== 'none') {
        if (!s.data) why = `needs ${dataNeeds[f.needs]} (set backdoorLens.data or "data" in backdoor-lens.json)`;
        else if (f.needs === 'mixed' && s.dataKind !== 'mixed') why = `needs ${dataNeeds.mixed}`;
      }
      const neurons = analyses.some((a) => a.id === f.id && !a.detector);
      return { id: f.id, title: f.title, basis: neurons ? 'neurons' : 'trigger', ...(why ? { notApplicable: why } : {}) };
    });
  }

  private remember(key: string, value: RememberedScan): void {
    this.scans.delete(key);
    this.scans.set(key, value);
    // Two models' worth of analysis state is plenty for "scan, then fix".
    while (this.scans.size > 2) this.scans.delete(this.scans.keys().next().value!);
  }

  private async scan(path: string, s: ScanSettings, ctx: JobContext): Promise<ScanJobResult> {
    const session = this.session(s);
    ctx.progress(0, 'Loading the model', 'load-model');
    let model: LoadedModel;
    try {
      model = await session.open(path);
    } catch (e) {
      // A checkpoint refused as unsafe is a result in itself: its findings say why (BL030–BL032).
      if (e instanceof UnsafeCheckpointError) return refusedResult(path, e, s);
      throw e;
    }
    ctx.signal.throwIfAborted();
    const scanned = await this.scanLoaded(session, model, ctx);
    return { kind: 'scan', report: scanned.report, ...scanViews(scanned, scanned.data), outline: session.describe(model), fixes: this.availableFixes(model, s) };
  }

  private async scanLoaded(session: Session, model: LoadedModel, ctx: JobContext) {
    const s = session.config;
    ctx.progress(0, s.data ? `Loading the data (${basename(s.data)})` : 'No data set: data-free methods only', 'load-data');
    const data = session.loadData(model);
    const result = await session.scan(model, { data, signal: ctx.signal, onProgress: (p) => ctx.progress(p.fraction, p.stage, p.method) });
    this.remember(`${model.sha256}\n${settingsKey(s)}`, { report: result.report, outputs: result.outputs });
    return { ...result, data };
  }

  private async describe(path: string, s: ScanSettings): Promise<DescribeJobResult> {
    const session = this.session(s);
    const model = await session.open(path);
    return { kind: 'describe', outline: session.describe(model), fixes: this.availableFixes(model, s) };
  }

  private async fix(path: string, method: string, layer: string | undefined, s: ScanSettings, outputs: Record<string, FixOutputs>, ctx: JobContext): Promise<FixJobResult> {
    const session = this.session(s);
    ctx.progress(0, 'Loading the model', 'load-model');
    const model = await session.open(path);
    const key = `${model.sha256}\n${settingsKey(s)}`;
    // A fix may need what the scan found (reversed triggers for adaptive pruning, BNA, unlearning).
    let remembered = this.scans.get(key);
    if (!remembered) {
      const scanned = await this.scanLoaded(session, model, { signal: ctx.signal, progress: (f, st, step) => ctx.progress(0.3 * f, `Scanning first: ${st}`, step && `scan:${step}`) });
      remembered = { report: scanned.report, outputs: scanned.outputs };
    }
    const data = session.loadData(model);
    const triggered = this.triggeredSet(session, model, remembered.report);
    const title = method === AUTO ? 'Trying each fix' : (fixes.find((f) => f.id === method)?.title ?? method);
    ctx.progress(0.3, title, method);
    // The confirming rescan is the session's scan, the one the editor shows for the written file.
    const result = await session.fix(model, {
      method,
      data,
      options: { ...s.methodOptions?.[method], ...(layer ? { layer } : {}) },
      previous: remembered.outputs,
      ...(triggered ? { triggered: triggered.set } : {}),
      signal: ctx.signal,
      onProgress: (f, st) => ctx.progress(0.3 + 0.65 * f, `${title}: ${st}`, method),
    });
    ctx.signal.throwIfAborted();

    const label = outputLabel(result.method, result.outcome);
    const out = outputs[label];
    if (result.model && !out) throw new Error(`no output path was claimed for '${label}'`);
    const notes = [...result.notes];
    const { files, weights } = result.model && out ? session.fixFiles(model, result, out) : { files: [] };
    if (result.model && out) {
      if (result.rescan) result.rescan.report.model.path = out.onnx;
      // The state_dict the user started from, with the tensors the fix changed; a graph change has no place in it.
      if (out.safetensors && weights?.path === null) notes.push(`no ${basename(out.safetensors)}: ${weights.reason}`);
      ctx.signal.throwIfAborted();
      // Written last, after everything that can fail or be cancelled: all files or none, never over an existing one.
      writeFilesAtomic(files, { signal: ctx.signal, exclusive: true });
    }
    const m = result.measurement;
    const attacks = [
      ...(m?.triggers ?? []).map((t) => ({ what: `reversed ${t.label}`, before: t.before, after: t.after, n: t.n })),
      ...(m?.trueAttack ? [{ what: `true trigger (${basename(m.trueAttack.source)}${triggered ? `, ${triggered.description}` : ''})`, before: m.trueAttack.before, after: m.trueAttack.after, n: m.trueAttack.n }] : []),
    ];
    const asrParts = [m?.triggers.length ? 'the reversed triggers' : '', m?.trueAttack ? basename(m.trueAttack.source) : ''].filter(Boolean);
    return {
      kind: 'fix',
      written: files.map((f) => f.path),
      summary: {
        method: result.method,
        requested: method,
        outcome: result.outcome,
        headline: result.headline,
        pruned: result.pruned,
        notes: result.nothing ? [`nothing written: ${result.nothing}`, ...notes] : notes,
        before: { accuracy: m?.accuracy?.before ?? null, asr: m?.estimated?.before ?? null },
        after: { accuracy: m?.accuracy?.after ?? null, asr: m?.estimated?.after ?? null },
        ...(m && asrParts.length ? { asrSource: `${m.heldOut}; attack success of ${asrParts.join(' and ')}` } : {}),
        attacks,
        ...(m?.accuracy?.perClass.length ? { perClass: m.accuracy.perClass } : {}),
        ...(result.tried ? { tried: result.tried.map((t) => ({ method: t.method, outcome: t.outcome, reason: t.reason, asr: t.estimated, accuracy: t.accuracy, seconds: t.seconds, chosen: t.chosen })) } : {}),
        ...(result.rescan ? { rescan: { verdict: result.rescan.report.verdict, targets: result.rescan.report.targets } } : {}),
      },
      ...(result.rescan && result.model && out
        ? { rescan: { report: result.rescan.report, ...scanViews(result.rescan, data), outline: session.describe({ ...model, path: out.onnx, format: 'onnx', onnx: result.model, sourceKeys: undefined }), fixes: this.availableFixes({ ...model, onnx: result.model, sourceKeys: undefined }, s) } }
        : {}),
    };
  }

  /**
   * The triggered test set, when one is configured: with the configured target, else the target the
   * scan detected (or all-to-all when it found that).
   */
  private triggeredSet(session: Session, model: LoadedModel, report: ScanReport): { set: TriggeredSet; description: string } | undefined {
    const s: ScanSettings = session.config;
    if (!s.triggeredData) return undefined;
    const allToAll = s.target === undefined && report.attackType === 'all-to-all';
    const target = s.target ?? report.targets[0];
    if (!allToAll && target === undefined) return undefined;
    const data = session.loadData(model, { path: s.triggeredData })!;
    if (!data.labels) return undefined;
    return { set: { data, ...(allToAll ? { allToAll: true } : { target }) }, description: allToAll ? 'all-to-all' : `target class ${target}${s.target === undefined ? ' (detected)' : ''}` };
  }
}

function refusedResult(path: string, e: UnsafeCheckpointError, s: ScanSettings): ScanJobResult {
  const report = refusedScanReport(e, s.seed);
  return {
    kind: 'scan',
    report,
    images: [],
    triggers: [],
    triggersTotal: 0,
    outline: refusedOutline(path, e.format, e.sha256),
    fixes: [],
  };
}

/** What the editor shows of a scan besides its report: the trigger viewer's triggers, and the images it does not draw itself. */
function scanViews(scanned: Pick<ScanResult, 'outputs' | 'report' | 'images'>, data: Dataset | undefined): Pick<ScanJobResult, 'images' | 'triggers' | 'triggersTotal'> {
  const triggers = triggerViews(scanned.outputs, scanned.report, data);
  // The viewer draws the triggers it has from their values; the PNGs stay for anything else.
  const drawn = (i: { kind: string; pair?: { source: number; target: number }; label?: number }) =>
    ['mask', 'pattern', 'stamped'].includes(i.kind) && triggers.views.some((v) => (i.pair ? v.pair?.source === i.pair.source && v.pair.target === i.pair.target : v.label === i.label));
  return { images: scanned.images.filter((i) => !drawn(i)).map((i) => ({ ...i })), triggers: triggers.views, triggersTotal: triggers.total };
}
