/**
 * Applies a fix (or `auto`: every applicable fix, cheapest first) and makes it measure itself
 * before anything is published: the fix fits on part of the data, is graded on the held-out part
 * (clean accuracy, attack success of every reversed trigger, the true ASR when a triggered set is
 * given), a removal is confirmed by a rescan of the fixed model, and the result states an outcome
 * (removed / reduced / failed) with the numbers. The fixed model carries a record of that
 * measurement (engine/fixes/record.ts) so a later scan measures the same triggers again.
 */
import type { ReversedTrigger } from './analyses/reversal/trigger';
import { triggersFrom } from './analyses/reversal/trigger';
import type { AnalysisOutput, DataKind } from './analyses/types';
import type { Dataset } from './data/types';
import { BackdoorLensError, asBackdoorLensError, usageError } from './errors';
import { splitForFix, type FixSplit } from './fixes/holdout';
import { FixProbe, referenceClasses, type FixMeasurement, type ProbeReading, type TriggeredSet } from './fixes/measure';
import { DEFAULT_BUDGET, DEFAULT_GOAL, judge, type FixOutcome, type Judgement, type RescanVerdict } from './fixes/outcome';
import { writeRecord } from './fixes/record';
import { withFlagBoundCopies } from './fixes/triggers';
import { canReverseAgain, reverseAgain } from './fixes/reverse-again';
import { AUTO, findFix, fixes } from './fixes/registry';
import type { Fix, FixContext, FixResult, FixRun, FixTrial } from './fixes/types';
import type { LoadedModel } from './formats/types';
import type { OnnxModel } from './graph/model';
import { imagesPerCall, sampleFloats } from './runtime/batch';
import type { Runtime } from './runtime/session';
import { missingData, resolveMethods, scan, type ScanRequest, type ScanResult } from './scan';
import { createHash } from 'node:crypto';

/** What the confirming rescan runs (default: the default scan's detectors, which alone decide a verdict). */
export type RescanRequest = Pick<ScanRequest, 'methods' | 'methodOptions' | 'thresholdMultiplier' | 'timeLimitMs' | 'maxMemoryMB'>;

export interface FixRequest {
  /** A fix id from the registry, or 'auto'. */
  method: string;
  runtime: Runtime;
  data?: Dataset;
  dataKind?: DataKind;
  mode?: 'fixed' | 'adaptive';
  /** u of mean ± u·std, the rule fixed mode prunes by (default 3). */
  thresholdMultiplier?: number;
  seed?: number;
  batchSize?: number;
  /** The method's options (`--option key=value`). */
  options?: Record<string, unknown>;
  /** Options per method, for `auto`'s candidates (a method's own `options` win for that method). */
  methodOptions?: Record<string, Record<string, unknown>>;
  /** Outputs of a scan of the same model (e.g. its reversed triggers), when one ran. */
  previous?: ReadonlyMap<string, AnalysisOutput>;
  /** Without a scan's outputs, reverse triggers first with the default detectors (default true). */
  reverse?: boolean;
  /** A separate held-out set to measure on (then all of `data` is fitted on). */
  heldOut?: Dataset;
  /** Share of each class of `data` held out when no separate set is given (default 0.3). */
  heldOutShare?: number;
  /** A triggered test set with the true trigger, for the true ASR. */
  triggered?: TriggeredSet;
  /** Attack success a removal must reach (fraction, default 0.02) and clean accuracy it may cost (fraction, default 0.015). */
  goal?: number;
  budget?: number;
  /** The scan that confirms a removal; false: none (the outcome then rests on the measurement alone, and says so). */
  rescan?: RescanRequest | false;
  /** Where the fixed model will be written, for the rescan's report. */
  outPath?: string;
  signal?: AbortSignal;
  onProgress?(fraction: number, stage: string): void;
}

/** The fixes `auto` tries for this model and data, cheapest first. */
export function autoCandidates(model: LoadedModel, data: Dataset | undefined, dataKind: DataKind): Fix[] {
  return fixes.filter((f) => !f.notInAuto && !missingData(asAnalysis(f), data, dataKind) && !f.notApplicable?.(model));
}

const asAnalysis = (f: Fix) => ({ id: f.id, title: f.title, needs: f.needs, detector: false, runsByDefault: false, run: async () => ({}) });

function checkApplicable(fix: Fix, model: LoadedModel, request: FixRequest): void {
  const missing = missingData(asAnalysis(fix), request.data, request.dataKind ?? 'clean');
  if (missing) throw usageError(`fix '${fix.id}' ${missing}`);
  const notApplicable = fix.notApplicable?.(model);
  if (notApplicable) throw new BackdoorLensError('unsupported-model', `fix '${fix.id}' does not apply: ${notApplicable}`, { file: model.path });
}

/** The reversed triggers: the scan's, or the default detectors run here on the whole data set. */
async function triggersFor(model: LoadedModel, request: FixRequest, signal: AbortSignal, progress: (f: number, s: string) => void): Promise<{ triggers: ReversedTrigger[]; source: string; outputs: ReadonlyMap<string, AnalysisOutput> }> {
  if (request.previous && request.previous.size > 0) {
    const triggers = triggersFrom(request.previous);
    return { triggers, source: triggers.length ? `${triggers.length} reversed by the scan` : 'the scan reversed no trigger', outputs: request.previous };
  }
  const data = request.data;
  if (request.reverse === false) return { triggers: [], source: 'no trigger reversed: reversal turned off', outputs: new Map() };
  if (!data?.labels || (request.dataKind ?? 'clean') !== 'clean') return { triggers: [], source: 'no trigger reversed: that needs labelled clean data', outputs: new Map() };
  const detectors = resolveMethods(undefined).filter((a) => a.detector).map((a) => a.id);
  const scanned = await scan(model, {
    runtime: request.runtime, data, dataKind: 'clean', methods: detectors, seed: request.seed, batchSize: request.batchSize, methodOptions: request.methodOptions, signal,
    onProgress: (p) => progress(p.fraction, `reversing triggers: ${p.stage}`),
  });
  const triggers = triggersFrom(scanned.outputs);
  return { triggers, source: triggers.length ? `${triggers.length} reversed by ${detectors.join(', ')} on all ${data.n} images` : `${detectors.join(', ')} reversed no trigger on ${data.n} images`, outputs: scanned.outputs };
}

/** The fixed model as a loaded model, for the rescan. */
function loadedFixed(model: LoadedModel, fixed: OnnxModel, path: string | undefined): LoadedModel {
  const bytes = fixed.toBytes();
  return { ...model, path: path ?? `${model.path} (fixed)`, format: 'onnx', sha256: createHash('sha256').update(bytes).digest('hex'), fileBytes: bytes.byteLength, onnx: fixed, findings: [], sourceKeys: undefined };
}

function verdictOf(r: ScanResult): RescanVerdict {
  const flagged = r.report.evidence.filter((e) => e.flagged).map((e) => e.summary);
  return {
    backdoored: r.report.verdict === 'backdoored',
    targets: r.report.targets,
    summary: r.report.verdict === 'backdoored' ? (flagged.join('; ') || `target ${r.report.targets.join(', ')}`) : r.report.verdict === 'clean' ? 'no backdoor found' : 'inconclusive: no detector ran',
  };
}

interface Candidate {
  fix: Fix;
  run?: FixRun;
  error?: string;
  measurement?: FixMeasurement;
  judgement: Judgement;
  rescan?: ScanResult;
  seconds: number;
}

const rank: Record<FixOutcome, number> = { removed: 0, reduced: 1, failed: 2 };

/** The better of two candidates: by outcome, then lower estimated ASR, then higher accuracy. */
function better(a: Candidate, b: Candidate): Candidate {
  if (rank[a.judgement.outcome] !== rank[b.judgement.outcome]) return rank[a.judgement.outcome] < rank[b.judgement.outcome] ? a : b;
  const ea = a.measurement?.estimated?.after ?? Infinity, eb = b.measurement?.estimated?.after ?? Infinity;
  if (ea !== eb) return ea < eb ? a : b;
  return (a.measurement?.accuracy?.after ?? 0) >= (b.measurement?.accuracy?.after ?? 0) ? a : b;
}

export async function applyFix(model: LoadedModel, request: FixRequest): Promise<FixResult> {
  const auto = request.method === AUTO;
  const single = auto ? undefined : findFix(request.method);
  if (!auto && !single) throw usageError(`unknown fix method '${request.method}'; available: ${[AUTO, ...fixes.map((f) => f.id)].join(', ')}`);
  if (single) checkApplicable(single, model, request);
  const dataKind = request.dataKind ?? 'clean';
  const candidates = single ? [single] : autoCandidates(model, request.data, dataKind);
  if (candidates.length === 0) throw usageError(`no fix applies to ${model.path} with ${request.data ? request.data.source : 'no data'} (every fix needs data, BatchNorm or both)`);
  const signal = request.signal ?? new AbortController().signal;
  const say = (f: number, s: string) => request.onProgress?.(Math.min(1, Math.max(0, f)), s);
  const goal = request.goal ?? DEFAULT_GOAL, budget = request.budget ?? DEFAULT_BUDGET;

  const found = await triggersFor(model, request, signal, (f, s) => say(0.25 * f, s));
  let split: FixSplit | undefined;
  let probe: FixProbe | undefined;
  let before: ProbeReading | undefined;
  const read = { batchSize: request.batchSize, signal };
  if (request.data || request.triggered) {
    split = request.data ? splitForFix(request.data, { share: request.heldOutShare, seed: request.seed, heldOut: request.heldOut }) : undefined;
    const heldOut = split?.heldOut ?? emptyLike(request.triggered!.data);
    const reference = await referenceClasses(model.onnx, heldOut, request.runtime, read);
    // Each trigger also grown to the detector's flag bound: a fix fitted to the smallest trigger that
    // worked can leave a larger one working (BNA on a SIG zoo model: 0.9% on the reversed triggers,
    // 65.8% at the flag bound, 50% for the true trigger; clean controls 0%).
    probe = FixProbe.build(heldOut, split?.description ?? 'no clean data given', withFlagBoundCopies(found.triggers), reference, { dataKind, triggered: request.triggered });
    before = await probe.read(model.onnx, request.runtime, read);
  }

  const tried: Candidate[] = [];
  let chosen: Candidate | undefined;
  for (const [i, fix] of candidates.entries()) {
    const span = (f: number) => 0.25 + (0.65 * (i + f)) / candidates.length;
    const c = await tryFix(fix, model, request, { found, split, probe, before, goal, budget, signal, read, dataKind, say: (f, s) => say(span(f), `${fix.id}: ${s}`) });
    tried.push(c);
    // Removed or reduced only if no trigger the detector would flag can be reversed again on the fixed model.
    if (c.measurement && c.judgement.outcome !== 'failed' && probe && split && canReverseAgain(probe.measuredTriggers, split.fit)) {
      say(span(0.88), `${fix.id}: reversing the triggers again on the fixed model`);
      c.measurement.reversedAgain = await reverseAgain({
        fixed: c.run!.model!, runtime: request.runtime, fit: split.fit, heldOut: probe.heldOut, reference: probe.reference, triggers: probe.measuredTriggers,
        goal, seed: (request.seed ?? 0) + 1, batchSize: request.batchSize, signal,
      });
      c.judgement = judge(c.measurement, goal, budget);
    }
    // A removal stands only when a rescan of the fixed model agrees.
    if (c.judgement.outcome === 'removed' && request.rescan !== false && c.run?.model) {
      say(span(0.9), `${fix.id}: rescanning the fixed model`);
      c.rescan = await rescanFixed(model, c, request, probe?.measuredTriggers ?? [], split, goal, budget, signal);
      c.judgement = judge(c.measurement!, goal, budget, verdictOf(c.rescan));
    }
    if (c.judgement.outcome === 'removed') {
      chosen = c;
      break;
    }
  }
  chosen ??= tried.reduce(better);
  if (!auto && chosen.error) throw new BackdoorLensError('internal', chosen.error);
  say(1, 'done');
  return finish(model, request, chosen, auto ? tried : undefined, probe?.measuredTriggers ?? [], split, goal, budget);
}

interface TryContext {
  found: { triggers: ReversedTrigger[]; source: string; outputs: ReadonlyMap<string, AnalysisOutput> };
  split?: FixSplit;
  probe?: FixProbe;
  before?: ProbeReading;
  goal: number;
  budget: number;
  signal: AbortSignal;
  read: { batchSize?: number; signal: AbortSignal };
  dataKind: DataKind;
  say(f: number, s: string): void;
}

async function tryFix(fix: Fix, model: LoadedModel, request: FixRequest, t: TryContext): Promise<Candidate> {
  const t0 = performance.now();
  const options = fix.id === request.method ? (request.options ?? {}) : { ...request.methodOptions?.[fix.id] };
  const ctx: FixContext = {
    model,
    runtime: request.runtime,
    data: t.split?.fit ?? request.data,
    dataKind: t.dataKind,
    numClasses: model.numClasses,
    // As in a scan: the method's own thresholdMultiplier option wins over the request's.
    thresholdMultiplier: Number(options.thresholdMultiplier ?? request.thresholdMultiplier ?? 3),
    seed: request.seed ?? 0,
    batchSize: request.batchSize ?? (request.data ? imagesPerCall(sampleFloats(request.data.dims), 64) : 64),
    options,
    signal: t.signal,
    previous: t.found.outputs,
    progress: (f, s) => t.say(0.8 * f, s),
    mode: request.mode ?? 'adaptive',
    triggers: t.found.triggers,
    triggerSource: t.found.source,
    goal: t.goal,
    budget: t.budget,
  };
  let run: FixRun;
  try {
    run = await fix.run(ctx);
  } catch (e) {
    const err = asBackdoorLensError(e);
    if (err.code === 'cancelled' || t.signal.aborted || request.method !== AUTO) throw e;
    return { fix, error: err.message, judgement: { outcome: 'failed', reason: `did not run: ${err.message}` }, seconds: (performance.now() - t0) / 1000 };
  }
  if (!run.model) return { fix, run, judgement: { outcome: 'failed', reason: `${run.nothing ?? 'produced no model'}; nothing written` }, seconds: (performance.now() - t0) / 1000 };
  checkInterface(model.onnx, run.model, fix.id);
  if (!t.probe || !t.before) return { fix, run, judgement: judge(emptyMeasurement(), t.goal, t.budget), seconds: (performance.now() - t0) / 1000 };
  t.say(0.85, 'measuring on held-out images');
  const after = await t.probe.read(run.model, request.runtime, t.read);
  const measurement = t.probe.compare(t.before, after);
  return { fix, run, measurement, judgement: judge(measurement, t.goal, t.budget), seconds: (performance.now() - t0) / 1000 };
}

async function rescanFixed(model: LoadedModel, c: Candidate, request: FixRequest, triggers: ReversedTrigger[], split: FixSplit | undefined, goal: number, budget: number, signal: AbortSignal): Promise<ScanResult> {
  const fixed = c.run!.model!;
  // The record first: the rescan measures its triggers again and shows before and after.
  writeRecord(fixed, recordOf(c, 'removed', triggers, split, goal, budget));
  const rescan = request.rescan || {};
  const methods = rescan.methods ?? resolveMethods(undefined).filter((a) => a.detector).map((a) => a.id);
  return scan(loadedFixed(model, fixed, request.outPath), {
    runtime: request.runtime, data: request.data, dataKind: request.dataKind, methods, methodOptions: rescan.methodOptions, thresholdMultiplier: rescan.thresholdMultiplier ?? request.thresholdMultiplier,
    seed: request.seed, batchSize: request.batchSize, timeLimitMs: rescan.timeLimitMs, maxMemoryMB: rescan.maxMemoryMB, signal,
  });
}

function recordOf(c: Candidate, outcome: FixOutcome, triggers: readonly ReversedTrigger[], split: FixSplit | undefined, goal: number, budget: number) {
  const m = c.measurement!;
  return {
    method: c.fix.id,
    outcome,
    goal,
    budget,
    split: split?.share !== undefined ? { share: split.share, seed: split.seed! } : null,
    measurement: { heldOut: m.heldOut, accuracy: m.accuracy, targets: m.targets, triggers: m.triggers, ...(m.trueAttack ? { trueAttack: m.trueAttack } : {}), estimated: m.estimated },
    // The triggers that were measured: the record is for measuring them again.
    triggers: [...triggers],
  };
}

function finish(model: LoadedModel, request: FixRequest, chosen: Candidate, tried: Candidate[] | undefined, triggers: ReversedTrigger[], split: FixSplit | undefined, goal: number, budget: number): FixResult {
  const run: FixRun = chosen.run ?? { method: chosen.fix.id, pruned: [], notes: [], nothing: chosen.error ?? 'did not run' };
  const { outcome, reason } = chosen.judgement;
  const fixed = run.model;
  if (fixed && chosen.measurement) {
    writeRecord(fixed, recordOf(chosen, outcome, triggers, split, goal, budget));
    if (chosen.rescan) {
      const bytes = fixed.toBytes();
      chosen.rescan.report.model.sha256 = createHash('sha256').update(bytes).digest('hex');
      if (chosen.rescan.report.repair) chosen.rescan.report.repair.outcome = outcome;
    }
  }
  const name = tried ? `auto (${chosen.fix.id})` : chosen.fix.id;
  const notes = [...run.notes];
  if (request.rescan === false && outcome === 'removed') notes.push('no rescan confirmed the removal (rescan turned off)');
  return {
    ...run,
    method: chosen.fix.id,
    notes,
    outcome,
    headline: `${name}: ${outcome} — ${reason}`,
    ...(chosen.measurement ? { measurement: chosen.measurement } : {}),
    ...(chosen.rescan ? { rescan: chosen.rescan } : {}),
    ...(tried
      ? {
          tried: tried.map(
            (c): FixTrial => ({ method: c.fix.id, outcome: c.judgement.outcome, reason: c.judgement.reason, estimated: c.measurement?.estimated?.after ?? null, accuracy: c.measurement?.accuracy?.after ?? null, seconds: c.seconds, chosen: c === chosen }),
          ),
        }
      : {}),
  };
}

function checkInterface(before: OnnxModel, after: OnnxModel, id: string): void {
  for (const i of before.inputs()) {
    if (!after.inputs().some((x) => x.name === i.name)) throw new BackdoorLensError('internal', `fix '${id}' lost the model input '${i.name}'`);
  }
  for (const o of before.outputs()) {
    if (!after.outputs().some((x) => x.name === o.name)) throw new BackdoorLensError('internal', `fix '${id}' lost the model output '${o.name}'`);
  }
}

function emptyMeasurement(): FixMeasurement {
  return { heldOut: 'nothing: no data given', accuracy: null, triggers: [], targets: [], unstamped: [], estimated: null };
}

function emptyLike(d: Dataset): Dataset {
  return { ...d, n: 0, x: new Float32Array(0), dims: [0, ...d.dims.slice(1)], labels: new Int32Array(0), poisoned: undefined };
}

