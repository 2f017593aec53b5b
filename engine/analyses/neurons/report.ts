/**
 * Turns per-layer neuron scores into what a scan reports (typed NeuronScores, one finding per
 * layer with flagged channels, a model-level summary) and into the in-memory state the pruning
 * fixes read (every neuron ranked, most suspicious first).
 */
import type { Finding, NeuronScore } from '../../report/types';
import { beyond, suspicion as suspicionOf, type Direction } from './stats';
import type { AnalysisOutput } from '../types';

export interface LayerScores {
  layer: string;
  scores: ArrayLike<number>;
  threshold: number;
  /** Larger = more suspicious; defaults to how many layer std the score lies past the layer mean. */
  suspicion?: ArrayLike<number>;
  /** Flags chosen by a rule other than score-vs-threshold (Fine-Pruning's accuracy margin). */
  flagged?: ArrayLike<boolean>;
}

export interface RankedNeuron {
  layer: string;
  channel: number;
  score: number;
  /** The sort key of adaptive pruning: larger = pruned earlier. */
  suspicion: number;
}

/** What a neuron analysis leaves in AnalysisOutput.state for the fixes. */
export interface NeuronState {
  kind: 'neurons';
  method: string;
  /** Every scored neuron, most suspicious first. */
  ranking: RankedNeuron[];
  /** The neurons the method's own threshold flags. */
  flagged: RankedNeuron[];
  /** The threshold rule in words, e.g. 'KL > mean + 3·std per layer'. */
  rule: string;
  /** How the threshold was chosen, for methods that choose it (ANP, Fine-Pruning). */
  thresholdChoice?: string;
}

export function neuronStateOf(output: AnalysisOutput | undefined): NeuronState | undefined {
  const s = output?.state as NeuronState | undefined;
  return s && s.kind === 'neurons' ? s : undefined;
}

export interface NeuronReportSpec {
  method: string;
  /** Finding code, e.g. 'BL011'. */
  code: string;
  /** Short method name for messages, e.g. 'BNP'. */
  label: string;
  /** What a score is, e.g. 'KL divergence'. */
  scoreName: string;
  direction: Direction;
  /** The threshold rule in words. */
  rule: string;
  thresholdChoice?: string;
  notes?: string[];
  /** How a flagged score compares with the threshold, in words (default 'above' / 'below'). */
  comparison?: string;
}

const fmt = (x: number) => (Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toPrecision(4));
const listed = 24;

export function neuronOutput(spec: NeuronReportSpec, layers: LayerScores[]): AnalysisOutput {
  const neurons: NeuronScore[] = [];
  const ranking: RankedNeuron[] = [];
  const flagged: RankedNeuron[] = [];
  const findings: Finding[] = [];
  let flaggedLayers = 0, total = 0;
  for (const l of layers) {
    const susp = l.suspicion ?? suspicionOf(l.scores, spec.direction);
    const hits: number[] = [];
    for (let c = 0; c < l.scores.length; c++) {
      const score = l.scores[c];
      const isFlagged = l.flagged ? !!l.flagged[c] : beyond(score, l.threshold, spec.direction);
      neurons.push({ method: spec.method, layer: l.layer, channel: c, score, threshold: l.threshold, flagged: isFlagged });
      const ranked = { layer: l.layer, channel: c, score, suspicion: susp[c] };
      ranking.push(ranked);
      if (isFlagged) (flagged.push(ranked), hits.push(c));
    }
    total += l.scores.length;
    if (hits.length === 0) continue;
    flaggedLayers++;
    const side = spec.comparison ?? (spec.direction === 'above' ? 'above' : 'below');
    const shown = hits.slice(0, listed).map((c) => `${c} (${fmt(l.scores[c])})`).join(', ');
    findings.push({
      severity: 'warning',
      code: spec.code,
      method: spec.method,
      message: `${spec.label}: ${hits.length} of ${l.scores.length} channels of ${l.layer} have a ${spec.scoreName} ${side} the layer threshold ${fmt(l.threshold)} (${spec.rule}): channel ${shown}${hits.length > listed ? `, … ${hits.length - listed} more` : ''}`,
      location: { layer: l.layer, channels: hits, ...(hits.length === 1 ? { channel: hits[0] } : {}) },
    });
  }
  ranking.sort((a, b) => b.suspicion - a.suspicion);
  flagged.sort((a, b) => b.suspicion - a.suspicion);
  const summary = flagged.length
    ? `${spec.label} flagged ${flagged.length} of ${total} channels in ${flaggedLayers} of ${layers.length} layers (${spec.rule}). Neuron flags alone are no verdict; \`backdoor-lens fix --method ${spec.method}\` prunes them`
    : `${spec.label} flagged none of ${total} channels in ${layers.length} layers (${spec.rule})`;
  findings.push({ severity: 'information', code: spec.code, method: spec.method, message: summary });
  const state: NeuronState = { kind: 'neurons', method: spec.method, ranking, flagged, rule: spec.rule, ...(spec.thresholdChoice ? { thresholdChoice: spec.thresholdChoice } : {}) };
  return { neurons, findings, direction: spec.direction, notes: spec.notes, state };
}
