/**
 * What a scan does differently for a model a fix wrote, so that the rescan agrees with the fix:
 *  - a BNA model (f, one corrected copy g_t per target, the inference rule) is judged by its
 *    corrected networks: an input f assigns to t is answered by g_t, so the backdoor to t is gone
 *    exactly when g_t has none to t. Each g_t is scanned; its findings toward its own target
 *    and toward classes BNA did not correct count, those toward other corrected targets belong
 *    to their own g;
 *  - a model with a fix record has the record's triggers measured again on the held-out part of
 *    the scan's data (the fix's split), shown beside what the fix recorded; a trigger still
 *    above the fix's goal is evidence of a backdoor (BL060), as it made the fix's outcome.
 */
import type { AnalysisOutput } from '../analyses/types';
import type { Dataset } from '../data/types';
import { subset } from '../data/types';
import type { LoadedModel } from '../formats/types';
import { codeInfo } from '../report/codes';
import type { Finding, RepairRow, RepairSection, ScanReport, VerdictEvidence } from '../report/types';
import type { Runtime } from '../runtime/session';
import type { ScanRequest, ScanResult } from '../scan';
import { bnaStructure, networkOf, type BnaStructure } from './bna-graph';
import { heldOutIndices } from './holdout';
import { FixProbe, referenceClasses, worstTriggerPerTarget } from './measure';
import { pct } from './outcome';
import { readRecord } from './record';

type ScanOne = (model: LoadedModel, request: ScanRequest) => Promise<ScanResult>;

/** The target a finding points at, when it names one. */
function findingTarget(f: Finding): number | undefined {
  return f.location?.pair?.target ?? f.location?.label;
}

/** Scans a BNA model by its corrected networks; undefined when the model is not one. */
export async function scanBnaModel(model: LoadedModel, request: ScanRequest, scanOne: ScanOne): Promise<ScanResult | undefined> {
  const bna = bnaStructure(model.onnx);
  if (!bna) return undefined;
  const parts: { target: number; result: ScanResult; counted: number[] }[] = [];
  for (const [i, target] of bna.targets.entries()) {
    const g = networkOf(model.onnx, bna.correctedLogits.get(target)!, `${model.path} (corrected network for target ${target})`);
    const result = await scanOne({ ...model, onnx: g, findings: [] }, {
      ...request,
      onProgress: request.onProgress && ((p) => request.onProgress!({ ...p, fraction: (i + p.fraction) / bna.targets.length, stage: `corrected network for target ${target}: ${p.stage}` })),
    });
    // Another corrected target's backdoor is f's, answered by that target's own g.
    const counted = result.report.targets.filter((t) => t === target || !bna.targets.includes(t));
    parts.push({ target, result, counted });
  }
  return merge(model, bna, parts);
}

function merge(model: LoadedModel, bna: BnaStructure, parts: { target: number; result: ScanResult; counted: number[] }[]): ScanResult {
  const base = parts[0].result;
  const relevant = (p: (typeof parts)[number], t: number | undefined) => t === undefined || p.counted.includes(t);
  const targets = [...new Set(parts.flatMap((p) => p.counted))].sort((a, b) => a - b);
  const prefix = (p: (typeof parts)[number], text: string) => (parts.length > 1 ? `corrected network for target ${p.target}: ${text}` : text);
  const findings: Finding[] = parts.flatMap((p) =>
    p.result.report.findings.flatMap((f) => {
      const t = findingTarget(f);
      if (relevant(p, t)) return [{ ...f, message: prefix(p, f.message) }];
      // Not this network's to answer: kept as information, never as a backdoor finding.
      return [{ ...f, severity: 'information' as const, message: prefix(p, `${f.message} (target ${t} is corrected by its own network: not counted)`) }];
    }),
  );
  const judged = `the corrected network${parts.length > 1 ? 's' : ''} ${parts.map((p) => `g${p.target}`).join(', ')} (an input f assigns to a corrected target t is answered by g_t)`;
  findings.unshift({ ...info('BL062'), method: 'bna', message: `BNA model with corrected target${bna.targets.length > 1 ? 's' : ''} ${bna.targets.join(', ')}: the scan judged ${judged}` });
  const evidence: VerdictEvidence[] = parts.flatMap((p) =>
    p.result.report.evidence.map((e) => {
      const counted = e.targets.filter((t) => relevant(p, t));
      return { ...e, method: parts.length > 1 ? `g${p.target}:${e.method}` : e.method, flagged: e.flagged && counted.length > 0, targets: counted, summary: prefix(p, e.summary) };
    }),
  ).sort((a, b) => Number(b.flagged) - Number(a.flagged));
  // Pair (s, t) from the network that answers t: g_t for a corrected target, else the first.
  const pairs = base.report.pairs.map((pair) => parts.find((p) => p.target === pair.target)?.result.report.pairs.find((x) => x.source === pair.source && x.target === pair.target && x.method === pair.method) ?? pair);
  const outputs = new Map<string, AnalysisOutput>(base.outputs);
  const report: ScanReport = {
    ...base.report,
    model: { ...base.report.model, path: model.path, sha256: model.sha256, format: model.format },
    verdict: targets.length ? 'backdoored' : base.report.verdict === 'inconclusive' ? 'inconclusive' : 'clean',
    targets,
    attackType: targets.length ? base.report.attackType : null,
    evidence,
    pairs,
    findings: [...model.findings, ...findings],
    timings: { ...base.report.timings, total: parts.reduce((a, p) => a + (p.result.report.timings.total ?? 0), 0) },
  };
  return { report, images: parts.flatMap((p) => p.result.images), outputs };
}

const info = (code: string) => ({ severity: codeInfo(code).severity, code });

/**
 * The fix record check: re-measures the recorded triggers (and clean accuracy) on this model and
 * adds the repair section, its evidence and finding to the report. Changes the verdict to
 * backdoored when a recorded trigger's target is still above the fix's goal.
 */
export async function checkFixRecord(model: LoadedModel, data: Dataset | undefined, result: ScanResult, runtime: Runtime, options: { batchSize?: number; signal?: AbortSignal }): Promise<void> {
  const record = readRecord(model.onnx);
  const bna = bnaStructure(model.onnx);
  if (!record) return;
  const recorded = record.measurement;
  const section: RepairSection = {
    method: record.method,
    outcome: record.outcome,
    goal: record.goal,
    budget: record.budget,
    recordedOn: recorded.heldOut,
    measuredOn: 'nothing: the scan had no data',
    rows: [],
    ...(bna ? { bna: { targets: bna.targets, judged: `the corrected network${bna.targets.length > 1 ? 's' : ''} ${bna.targets.map((t) => `g${t}`).join(', ')}` } } : {}),
  };
  const report = result.report;
  report.repair = section;
  const rowsWithoutNow = (): RepairRow[] => [
    ...(recorded.accuracy ? [{ what: 'clean accuracy', before: recorded.accuracy.before, fixed: recorded.accuracy.after, now: null, n: 0 }] : []),
    ...recorded.targets.map((t) => ({ what: `target ${t.target}: reversed triggers`, target: t.target, before: t.before, fixed: t.after, now: null, n: 0 })),
  ];
  if (!data || data.n === 0) {
    section.rows = rowsWithoutNow();
    report.findings.push({ ...info('BL061'), method: 'fix', message: `Written by the ${record.method} fix (outcome ${record.outcome}); give data to measure its triggers again` });
    return;
  }
  const heldIdx = record.split ? heldOutIndices(data, record.split.share, record.split.seed) : Array.from({ length: data.n }, (_, i) => i);
  const heldOut = { ...subset(data, heldIdx), source: data.source };
  section.measuredOn = record.split ? `${heldIdx.length} held-out images of ${data.source} (the fix's split: ${Math.round(100 * record.split.share)}% of each class, seed ${record.split.seed})` : `all ${data.n} images of ${data.source}`;
  const reference = await referenceClasses(model.onnx, heldOut, runtime, options);
  const probe = FixProbe.build(heldOut, section.measuredOn, record.triggers, reference);
  const now = probe.rates(await probe.read(model.onnx, runtime, options));
  section.rows = [
    ...(recorded.accuracy ? [{ what: 'clean accuracy', before: recorded.accuracy.before, fixed: recorded.accuracy.after, now: now.accuracy, n: now.n }] : []),
    ...recorded.targets.map((t) => {
      const m = now.targets.find((x) => x.target === t.target);
      return { what: `target ${t.target}: reversed triggers`, target: t.target, before: t.before, fixed: t.after, now: m?.rate ?? null, n: m?.n ?? 0 };
    }),
    ...recorded.triggers.map((t) => {
      const m = now.triggers.find((x) => x.label === t.label);
      return { what: t.label, target: t.target, before: t.before, fixed: t.after, now: m?.rate ?? null, n: m?.n ?? 0 };
    }),
  ];
  const surviving = worstTriggerPerTarget(now).filter((t) => t.rate > record.goal);
  const worst = now.triggers.reduce((w, t) => Math.max(w, t.rate), 0);
  const flagged = surviving.length > 0;
  report.evidence = [
    ...report.evidence,
    {
      method: 'fix-record',
      statistic: `attack success of the triggers the ${record.method} fix was measured with, on held-out images`,
      value: worst,
      threshold: record.goal,
      direction: 'above' as const,
      thresholdSource: "the fix's goal, recorded in the model: a removed backdoor leaves each reversed trigger at most this",
      flagged,
      targets: surviving.map((t) => t.target),
      attackType: null,
      summary: `fix-record: the recorded triggers succeed on ${pct(worst)} now ${flagged ? '>' : '≤'} ${pct(record.goal)}${recorded.estimated ? ` (before the fix ${pct(recorded.estimated.before)})` : ''}`,
    },
  ].sort((a, b) => Number(b.flagged) - Number(a.flagged));
  for (const t of surviving) {
    const r = recorded.targets.find((x) => x.target === t.target);
    report.findings.unshift({ severity: 'error', code: 'BL060', method: 'fix', location: { label: t.target }, message: `The triggers the ${record.method} fix was measured with still send ${pct(t.rate)} of ${t.n} held-out images to class ${t.target} (before the fix ${r ? pct(r.before) : 'n/a'}; the goal is ≤ ${pct(record.goal)}). Target class ${t.target}.` });
  }
  if (!flagged) {
    const acc = section.rows[0]?.what === 'clean accuracy' ? `; clean accuracy ${pct(section.rows[0].before ?? 0)} before, ${pct(section.rows[0].now ?? 0)} now` : '';
    report.findings.push({ ...info('BL061'), method: 'fix', message: `Written by the ${record.method} fix (outcome ${record.outcome}): its triggers now succeed on ${pct(worst)} of held-out images (before the fix ${recorded.estimated ? pct(recorded.estimated.before) : 'n/a'})${acc}` });
  }
  if (flagged) {
    report.verdict = 'backdoored';
    report.targets = [...new Set([...report.targets, ...surviving.map((t) => t.target)])].sort((a, b) => a - b);
  }
}
