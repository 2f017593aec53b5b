/**
 * Builds a pruning fix from a neuron analysis. 'fixed' mode prunes what the method's own
 * threshold flags (the paper's rule); 'adaptive' mode prunes in the method's ranking order until
 * the reverse-engineered trigger stops working within a clean-accuracy budget (adaptive.ts), and
 * no trigger the detector would flag can be reversed again on the pruned model (re-reverse.ts).
 * With option `layer` it prunes exactly the channels the method flagged in that layer (what a
 * layer's code lens names), nothing else. The purified model is always a new model.
 */
import { neuronStateOf, type NeuronState, type RankedNeuron } from '../analyses/neurons/report';
import { numberOption } from '../analyses/neurons/options';
import { pruneNeurons } from '../analyses/neurons/prune';
import type { ReversedTrigger } from '../analyses/reversal/trigger';
import type { Analysis } from '../analyses/types';
import { BackdoorLensError, usageError } from '../errors';
import { adaptivePrune, type AdaptiveOutcome } from './adaptive';
import { defaultReReverseOptions, reReverse, reReversible } from './re-reverse';
import { stampable } from './triggers';
import type { Fix, FixContext, FixRun, PrunedNeuron } from './types';

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/**
 * Adaptive pruning, then the detector's question on the pruned model: while a re-reversed trigger
 * small enough to be flagged still works, it joins the triggers and the search runs again.
 */
async function pruneUntilNotReversible(ctx: FixContext, ranking: readonly RankedNeuron[], first: ReversedTrigger[], goal: number, budget: number, notes: string[]): Promise<{ outcome: AdaptiveOutcome; rounds: number }> {
  let triggers = first;
  for (let round = 1; ; round++) {
    const outcome = await adaptivePrune({
      model: ctx.model.onnx, runtime: ctx.runtime, data: ctx.data!, dataKind: ctx.dataKind, ranking, triggers, goal, budget,
      batchSize: ctx.batchSize, signal: ctx.signal, progress: (f, s) => ctx.progress(0.5 + 0.5 * Math.min(1, (round - 1 + f) / MAX_ROUNDS), s),
    });
    if (!outcome.reachedGoal || outcome.pruned.length === 0 || ctx.dataKind !== 'clean' || !triggers.some(reReversible)) return { outcome, rounds: round };
    ctx.progress(0.5 + (0.5 * round) / MAX_ROUNDS, `re-reversing the trigger on the model with ${outcome.pruned.length} neurons pruned`);
    const again = await reReverse(pruneNeurons(ctx.model.onnx, outcome.pruned), ctx.runtime, ctx.data!, triggers, { ...defaultReReverseOptions, seed: ctx.seed + round, signal: ctx.signal });
    const survived = again.filter((r) => r.stillFlagged);
    notes.push(
      `round ${round}: after ${outcome.pruned.length} neurons, re-reversed ${again.map((r) => `${r.from.kind} → ${r.from.target}: ${r.trigger ? `size ${r.size.toFixed(2)}` : 'none worked'} (flagged ≤ ${r.from.flaggedBelowSize!.toFixed(2)})`).join('; ')}`,
    );
    if (survived.length === 0 || round === MAX_ROUNDS) {
      if (survived.length) notes.push(`stopped after ${MAX_ROUNDS} rounds with a re-reversed trigger still small enough to be flagged`);
      return { outcome: survived.length ? { ...outcome, reachedGoal: false } : outcome, rounds: round };
    }
    triggers = [...triggers, ...survived.map((r) => r.trigger!)];
  }
}

const MAX_ROUNDS = 4;

function toPruned(list: readonly RankedNeuron[]): PrunedNeuron[] {
  return list.map((n) => ({ layer: n.layer, channel: n.channel, score: n.score }));
}

/** "bn3 channels 16, 61": what a lens on that layer names. */
export function channelList(neurons: readonly { layer: string; channel: number }[]): string {
  const byLayer = new Map<string, number[]>();
  for (const n of neurons) byLayer.set(n.layer, [...(byLayer.get(n.layer) ?? []), n.channel]);
  return [...byLayer].map(([l, cs]) => `${l} channel${cs.length === 1 ? '' : 's'} ${cs.sort((a, b) => a - b).join(', ')}`).join('; ');
}

export function neuronPruningFix(analysis: Analysis, cost: number): Fix {
  return {
    id: analysis.id,
    title: `Prune the neurons ${analysis.title} flags`,
    needs: analysis.needs,
    cost,
    // The analysis's own options, and those only the fix reads.
    options: {
      ...analysis.options,
      layer: { type: 'string', doc: "prune exactly the channels the scan flags in this layer (the editor's lens)" },
      budget: { type: 'number', doc: 'clean accuracy (points) adaptive pruning may cost (default: --budget)' },
      goal: { type: 'number', doc: 'attack success (percent) adaptive pruning stops at (default: --goal)' },
    },
    notApplicable: analysis.notApplicable,
    async run(ctx: FixContext): Promise<FixRun> {
      const notes: string[] = [];
      const layer = ctx.options.layer === undefined ? undefined : String(ctx.options.layer);
      const budget = numberOption(ctx.options, analysis.id, 'budget', 100 * ctx.budget, { min: 0, max: 100 }) / 100;
      const goal = numberOption(ctx.options, analysis.id, 'goal', 100 * ctx.goal, { min: 0, max: 100 }) / 100;
      // A scan of the same model that already ran this method hands its scores over (ANP's masks cost minutes).
      const handed = ctx.previous.get(analysis.id);
      const scored = neuronStateOf(handed) ? handed! : await analysis.run({ ...ctx, options: withoutFixOptions(ctx.options), progress: (f, s) => ctx.progress(ctx.mode === 'adaptive' && !layer ? 0.5 * f : f, s) });
      if (scored === handed) notes.push(`reused the scores of the scan's ${analysis.id} run`);
      const state: NeuronState | undefined = neuronStateOf(scored);
      if (!state) throw new BackdoorLensError('internal', `${analysis.id} returned no neuron ranking`);
      notes.push(...(scored.notes ?? []).filter((n) => n !== state.thresholdChoice));
      const details: Record<string, unknown> = { rule: state.rule, flaggedByRule: state.flagged.length, scored: state.ranking.length };
      if (layer !== undefined) {
        const mine = state.flagged.filter((n) => n.layer === layer);
        if (!state.ranking.some((n) => n.layer === layer)) throw usageError(`${analysis.id} scores no layer named '${layer}'; layers: ${[...new Set(state.ranking.map((n) => n.layer))].join(', ')}`);
        notes.push(mine.length ? `pruned exactly what the ${layer} lens names: ${channelList(mine)} (${state.rule})` : `${analysis.id} flags no channel of ${layer} (${state.rule}): nothing pruned`);
        Object.assign(details, { mode: 'layer', layer });
        return { method: analysis.id, model: pruneNeurons(ctx.model.onnx, mine, `${ctx.model.path} (${analysis.id} pruned in ${layer})`), pruned: toPruned(mine), notes, details };
      }
      let pruned: readonly RankedNeuron[] = state.flagged;
      let mode = ctx.mode;
      if (mode === 'adaptive') {
        const triggers = ctx.triggers.filter((t) => stampable(t, ctx.data!).ok);
        if (triggers.length === 0) {
          mode = 'fixed';
          notes.push(`no reversed trigger that can be stamped on images (${ctx.triggerSource}): fell back to the fixed threshold (${state.rule})`);
        } else {
          const { outcome, rounds } = await pruneUntilNotReversible(ctx, state.ranking, triggers, goal, budget, notes);
          pruned = outcome.pruned;
          details.reReversalRounds = rounds;
          notes.push(
            `adaptive: pruned ${outcome.pruned.length} neuron(s) in ${analysis.id.toUpperCase()} ranking order; ${outcome.stop}`,
            `on the fit images: reversed trigger success ${pct(outcome.successBefore)} → ${pct(outcome.successAfter)} (goal < ${pct(goal)}); clean accuracy ${pct(outcome.accuracyBefore)} → ${pct(outcome.accuracyAfter)}, budget used ${(100 * outcome.budgetUsed).toFixed(2)} of ${(100 * budget).toFixed(2)} points`,
            `searched on ${outcome.measuredOn}; ${outcome.evaluations} evaluations`,
            `the fixed threshold (${state.rule}) would prune ${state.flagged.length}`,
          );
          Object.assign(details, {
            budget, goal, budgetUsed: outcome.budgetUsed, reachedGoalOnFit: outcome.reachedGoal, evaluations: outcome.evaluations,
          });
        }
      }
      if (mode === 'fixed') notes.push(`fixed threshold: pruned the ${state.flagged.length} neuron(s) flagged by ${state.rule}`);
      if (state.thresholdChoice && mode === 'fixed') notes.push(`threshold: ${state.thresholdChoice}`);
      details.mode = mode;
      details.thresholdMultiplier = ctx.thresholdMultiplier;
      const model = pruneNeurons(ctx.model.onnx, pruned, `${ctx.model.path} (${analysis.id} pruned)`);
      return { method: analysis.id, model, pruned: toPruned(pruned), notes, details };
    },
  };
}

/** The analysis's own options: all but `layer`, which only the fix reads. */
function withoutFixOptions(o: Record<string, unknown>): Record<string, unknown> {
  const { layer: _layer, ...rest } = o;
  return rest;
}
