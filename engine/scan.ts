/**
 * Runs the registered analyses that fit the model and data, and assembles the report.
 * Everything a scan needs is passed in; nothing is global, so scans can run side by side.
 */
import { analyses } from './analyses/registry';
import type { Analysis, AnalysisContext, AnalysisOutput, ArtifactImage, DataKind } from './analyses/types';
import type { Dataset, PreprocessSpec } from './data/types';
import { BackdoorLensError, asBackdoorLensError, usageError } from './errors';
import type { LoadedModel } from './formats/types';
import { bnStatus } from './graph/patterns';
import { codeInfo } from './report/codes';
import { REPORT_VERSION, type Finding, type MethodRun, type ScanReport, type Verdict } from './report/types';
import { imagesPerCall, sampleFloats } from './runtime/batch';
import type { Runtime } from './runtime/session';
import { JobGuard } from './runtime/limits';
import { imageInputOf } from './evaluate';
import { checkFixRecord, scanBnaModel } from './fixes/rescan';
import { TOOL_VERSION } from './version';

export interface ScanProgress {
  method: string;
  /** Overall fraction in [0, 1]. */
  fraction: number;
  /** For a person: the analysis and what it is doing, e.g. "Trigger reversal step 410/1500 (10 targets, 9 class shifts, 5 screens)", "Fine-Pruning (dormant channels): measuring accuracy with 12 channels pruned". */
  stage: string;
}

export interface ScanRequest {
  runtime: Runtime;
  data?: Dataset;
  /** The preprocessing the user gave; without data it tells data-free methods the input range (default: pixels in [0, 1]). */
  preprocess?: PreprocessSpec;
  dataKind?: DataKind;
  /** Method ids; default: every analysis that runs by default. */
  methods?: string[];
  /** The analyses to pick from (default: engine/analyses/registry.ts); a test of a new method adds it here. */
  analyses?: readonly Analysis[];
  /** u of mean ± u·std, the neuron methods' flag rule (default 3); a method's own `thresholdMultiplier` option wins. */
  thresholdMultiplier?: number;
  seed?: number;
  batchSize?: number;
  methodOptions?: Record<string, Record<string, unknown>>;
  signal?: AbortSignal;
  /** Stops the scan with a 'limit' error naming the stage it reached. */
  timeLimitMs?: number;
  /** Stops the scan when the process's resident memory passes this many MiB. */
  maxMemoryMB?: number;
  /**
   * The limits of the whole job when the caller started them earlier (the CLI, before loading the
   * model); timeLimitMs, maxMemoryMB and signal are then ignored.
   */
  guard?: JobGuard;
  /**
   * On a time or memory limit, return the report so far (the methods that finished, the one that was
   * stopped, a BL040 finding naming the stage) with `stopped` set, instead of throwing the limit error.
   */
  partialResults?: boolean;
  onProgress?(p: ScanProgress): void;
}

export interface ScanResult {
  report: ScanReport;
  /** Images analyses produced (trigger reversals); the caller decides where to write them. */
  images: ArtifactImage[];
  /** In-memory outputs per method, for a fix that follows. */
  outputs: Map<string, AnalysisOutput>;
  /** Set when a limit stopped the scan and partialResults was asked for: the report is partial. */
  stopped?: BackdoorLensError;
}

const dataNeedText: Record<Analysis['needs'], string> = {
  none: 'no data',
  clean: 'a clean sample set (--data)',
  labelled: 'a labelled clean sample set (--data with labels)',
  mixed: 'a possibly poisoned sample set (--data with --data-kind mixed)',
};

/** Why an analysis cannot run with this data, if it cannot. */
export function missingData(a: Pick<Analysis, 'needs'>, data: Dataset | undefined, kind: DataKind): string | undefined {
  if (a.needs === 'none') return undefined;
  if (!data) return `needs ${dataNeedText[a.needs]}`;
  if (a.needs === 'labelled' && !data.labels) return `needs labels, and ${data.source} has none`;
  if (a.needs === 'mixed' && kind !== 'mixed') return `needs ${dataNeedText.mixed}; the data given is declared clean`;
  if ((a.needs === 'clean' || a.needs === 'labelled') && kind === 'mixed') return `needs ${dataNeedText[a.needs]}; the data given is declared mixed (it may hold poisoned samples)`;
  return undefined;
}

export function resolveMethods(methods: string[] | undefined, data?: Dataset, registry: readonly Analysis[] = analyses): Analysis[] {
  if (!methods || methods.length === 0) return registry.filter((a) => a.runsByDefault === true || (a.runsByDefault === 'without-data' && !data?.labels));
  return methods.map((id) => {
    const a = registry.find((x) => x.id === id);
    if (!a) {
      throw usageError(`unknown method '${id}'; available: ${registry.map((x) => x.id).join(', ') || 'none registered'}`);
    }
    return a;
  });
}

function verdictOf(ran: { analysis: Analysis; output: AnalysisOutput }[]): Verdict {
  const detectors = ran.filter((r) => r.analysis.detector);
  if (detectors.some((r) => r.output.backdoored)) return 'backdoored';
  return detectors.length > 0 ? 'clean' : 'inconclusive';
}

/** "Trigger reversal step 40/1500 …" rather than "Trigger reversal: trigger reversal step 40/1500 …". */
function stageText(title: string, text: string): string {
  if (!text.toLowerCase().startsWith(title.toLowerCase())) return `${title}: ${text}`;
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * Scans a model. A model a fix wrote is judged as the fix left it (engine/fixes/rescan.ts): a BNA
 * model by its corrected networks, and a fix record's triggers are measured again.
 */
export async function scan(model: LoadedModel, request: ScanRequest): Promise<ScanResult> {
  const result = (await scanBnaModel(model, request, scanModel)) ?? (await scanModel(model, request));
  await checkFixRecord(model, request.data, result, request.runtime, { batchSize: request.batchSize, signal: request.signal });
  return result;
}

async function scanModel(model: LoadedModel, request: ScanRequest): Promise<ScanResult> {
  const started = Date.now();
  const selected = resolveMethods(request.methods, request.data, request.analyses);
  const explicit = (request.methods?.length ?? 0) > 0;
  const dataKind = request.dataKind ?? 'clean';
  const input = imageInputOf(model.onnx);
  const findings: Finding[] = [...model.findings];
  const methods: MethodRun[] = [];
  const timings: Record<string, number> = {};
  const outputs = new Map<string, AnalysisOutput>();
  const ran: { analysis: Analysis; output: AnalysisOutput }[] = [];
  const images: ArtifactImage[] = [];

  const guard = request.guard ?? new JobGuard({ command: 'scan', timeLimitMs: request.timeLimitMs, maxMemoryMB: request.maxMemoryMB, signal: request.signal });
  const signal = guard.signal;
  guard.stage = 'preparing the scan';
  let stopped: BackdoorLensError | undefined;
  try {
    return await runScan();
  } finally {
    if (!request.guard) guard.dispose();
  }

  async function runScan(): Promise<ScanResult> {
    const bn = bnStatus(model.onnx);
    const runnable = selected.map((a) => {
      const missing = missingData(a, request.data, dataKind);
      const notApplicable = missing ? undefined : a.notApplicable?.(model);
      return { a, why: missing ?? notApplicable, foldedBn: !!notApplicable && bn.state === 'folded' };
    });
    const needBn = runnable.filter((r) => r.foldedBn).map((r) => r.a.id);
    if (needBn.length) {
      findings.push({
        severity: codeInfo('BL020').severity,
        code: 'BL020',
        method: needBn[0],
        message: `${needBn.join(', ')} skipped: ${bn.evidence}, so the BN running statistics are gone. Re-export with BN kept — torch.onnx.export(model, x, path, training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) — or scan the PyTorch state_dict (.pt) instead`,
      });
    }
    // Progress weights: a trigger-reversal detector takes most of a scan's time (the bundled example:
    // 25 s of 30), so counting every analysis alike would sit at one fraction for most of the scan.
    const weight = (a: Analysis) => (a.detector ? 6 : 1);
    const toRun = runnable.filter((r) => !r.why).reduce((sum, r) => sum + weight(r.a), 0);
    let done = 0;
    for (const { a, why, foldedBn } of runnable) {
      if (why) {
        methods.push({ method: a.id, status: 'skipped', reason: why, ms: 0 });
        // Unrequested methods are skipped quietly in the methods list; requested ones get a finding too (BL020 already explains folded BN).
        if ((explicit || a.needs === 'none') && !foldedBn) {
          findings.push({ severity: 'information', code: 'BL021', message: `${a.title} skipped: ${why}`, method: a.id });
        }
        continue;
      }
      const t0 = Date.now();
      const ctx: AnalysisContext = {
        model,
        runtime: request.runtime,
        data: request.data,
        preprocess: request.preprocess ?? {},
        dataKind,
        numClasses: model.numClasses,
        thresholdMultiplier: Number(request.methodOptions?.[a.id]?.thresholdMultiplier ?? request.thresholdMultiplier ?? 3),
        seed: request.seed ?? 0,
        batchSize: request.batchSize ?? (request.data ? imagesPerCall(sampleFloats(request.data.dims), 64) : 64),
        options: request.methodOptions?.[a.id] ?? {},
        signal,
        previous: outputs,
        progress: (fraction, text) => {
          guard.stage = text;
          request.onProgress?.({ method: a.id, fraction: (done + weight(a) * Math.min(Math.max(fraction, 0), 1)) / toRun, stage: stageText(a.title, text) });
        },
      };
      guard.stage = `the ${a.title} analysis`;
      request.onProgress?.({ method: a.id, fraction: done / toRun, stage: a.title });
      try {
        signal.throwIfAborted();
        const output = await a.run(ctx);
        signal.throwIfAborted();
        const ms = Date.now() - t0;
        outputs.set(a.id, output);
        ran.push({ analysis: a, output });
        timings[a.id] = ms;
        methods.push({
          method: a.id,
          status: 'ran',
          ms,
          ...(output.direction ? { direction: output.direction, thresholdMultiplier: ctx.thresholdMultiplier } : {}),
          ...(output.gradientEvaluations !== undefined ? { gradientEvaluations: output.gradientEvaluations } : {}),
          ...(output.threshold !== undefined ? { threshold: output.threshold } : {}),
          ...(output.notes?.length ? { notes: output.notes } : {}),
        });
        findings.push(...(output.findings ?? []));
        images.push(...(output.artifacts ?? []));
      } catch (e) {
        if (signal.aborted) {
          const err = guard.stopped();
          if (!request.partialResults || err.code !== 'limit') throw err;
          // Keep what finished: this method is marked stopped, the rest skipped, and BL040 says where.
          stopped = err;
          const ms = Date.now() - t0;
          timings[a.id] = ms;
          methods.push({ method: a.id, status: 'stopped', reason: err.message, ms });
          findings.push({ severity: codeInfo('BL040').severity, code: 'BL040', message: err.message, method: a.id });
          break;
        }
        const err = asBackdoorLensError(e);
        if (err.code === 'cancelled' || err.code === 'limit') throw err;
        const ms = Date.now() - t0;
        timings[a.id] = ms;
        if (err.code === 'bad-data') {
          // The data cannot support the method (too few images of a class, one class only): it gives no verdict, and says why.
          methods.push({ method: a.id, status: 'skipped', reason: err.message, ms });
          findings.push({ severity: codeInfo('BL023').severity, code: 'BL023', message: `${a.title}: ${err.message}`, method: a.id });
        } else {
          methods.push({ method: a.id, status: 'failed', reason: err.message, ms });
          findings.push({ severity: codeInfo('BL022').severity, code: 'BL022', message: `${a.title} failed: ${err.message}`, method: a.id });
        }
      }
      done += weight(a);
    }
    if (stopped) {
      for (const { a } of runnable) if (!methods.some((m) => m.method === a.id)) methods.push({ method: a.id, status: 'skipped', reason: 'not run: the scan stopped at its limit before it', ms: 0 });
    }

    const verdict = verdictOf(ran);
    const targets = [...new Set(ran.flatMap((r) => r.output.targets ?? []))].sort((a, b) => a - b);
    const attackType = ran.find((r) => r.output.attackType)?.output.attackType ?? null;
    timings.total = Date.now() - started;
    const report: ScanReport = {
      reportVersion: REPORT_VERSION,
      tool: { name: 'backdoor-lens', version: TOOL_VERSION },
      createdAt: new Date().toISOString(),
      model: {
        path: model.path,
        sha256: model.sha256,
        format: model.format,
        input: { name: input.name, dims: input.dims, ...(request.data ? { preprocess: request.data.preprocess } : {}) },
        numClasses: model.numClasses,
        bn: bnStatus(model.onnx).state,
        ...(model.architecture ? { architecture: model.architecture } : {}),
        ...(model.notes?.length ? { notes: model.notes } : {}),
      },
      data: request.data ? { path: request.data.source, n: request.data.n, labelled: !!request.data.labels, kind: dataKind } : null,
      verdict,
      evidence: ran.flatMap((r) => r.output.evidence ?? []).sort((a, b) => Number(b.flagged) - Number(a.flagged)),
      attackType,
      targets,
      pairs: ran.flatMap((r) => r.output.pairs ?? []),
      labels: ran.flatMap((r) => r.output.labels ?? []),
      neurons: ran.flatMap((r) => r.output.neurons ?? []),
      findings: sortFindings(findings),
      methods,
      timings,
      artifacts: [],
      seed: request.seed ?? 0,
    };
    return { report, images, outputs, ...(stopped ? { stopped } : {}) };
  }
}

const severityRank = { error: 0, warning: 1, information: 2 } as const;

export function sortFindings(findings: Finding[]): Finding[] {
  return [...findings].sort((a, b) => severityRank[a.severity] - severityRank[b.severity] || a.code.localeCompare(b.code));
}
