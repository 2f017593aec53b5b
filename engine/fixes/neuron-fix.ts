/**
 * Builds a pruning fix from a neuron analysis. 'fixed' mode prunes what the method's own
 * threshold flags (the paper's rule); 'adaptive' mode prunes in the method's ranking order until
 * the reverse-engineered trigger stops working within a clean-accuracy budget (adaptive.ts), and
 * no trigger the detector would flag can be reversed again on the pruned model (re-reverse.ts).
 * The purified model is always a new model; the input is never changed.
 */
import { findAnalysis } from '../analyses/registry';
import { neuronStateOf, type NeuronState, type RankedNeuron } from '../analyses/neuron-report';
import { numberOption } from '../analyses/neuron-options';
import { pruneNeurons } from '../analyses/neuron-prune';
import { triggersFrom, type ReversedTrigger } from '../analyses/trigger';
import type { Analysis } from '../analyses/types';
import { BackdoorLensError } from '../errors';
import { adaptivePrune, DEFAULT_BUDGET, DEFAULT_GOAL, type AdaptiveOutcome } from './adaptive';
import { defaultReReverseOptions, reReverse, reReversible } from './re-reverse';
import type { Fix, FixContext, FixResult, PrunedNeuron } from './types';

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** Reversed triggers handed over by a scan, or found by running the registered detector here. */
async function triggersFor(ctx: FixContext, notes: string[]): Promise<ReversedTrigger[]> {
  const handed = triggersFrom(ctx.previous);
  if (handed.length) {
    notes.push(`using ${handed.length} reversed trigger(s) handed over by the scan (target${handed.length > 1 ? 's' : ''} ${[...new Set(handed.map((t) => t.target))].join(', ')})`);
    return handed;
  }
  const detector = findAnalysis('pairs');
  if (!detector || ctx.dataKind !== 'clean' || !ctx.data?.labels) return [];
  ctx.progress(0, 'reversing the trigger (pairs)');
  // The user's pairs.* options (e.g. pairs.threshold) apply here as they do in a scan.
  const pairOptions = Object.fromEntries(Object.entries(ctx.options).filter(([k]) => k.startsWith('pairs.')).map(([k, v]) => [k.slice(6), v]));
  const output = await detector.run({ ...ctx, options: pairOptions, previous: new Map(), progress: (f, s) => ctx.progress(0.5 * f, `pairs: ${s}`) });
  const found = triggersFrom(new Map([['pairs', output]]));
  notes.push(found.length ? `reversed ${found.length} trigger(s) with the 'pairs' detector (targets ${[...new Set(found.map((t) => t.target))].join(', ')})` : "the 'pairs' detector reversed no backdoor trigger");
  return found;
}

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

export function neuronPruningFix(analysis: Analysis): Fix {
  return {
    id: analysis.id,
    title: `Prune the neurons ${analysis.title} flags`,
    needs: analysis.needs,
    notApplicable: analysis.notApplicable,
    async run(ctx: FixContext): Promise<FixResult> {
      const notes: string[] = [];
      const budget = numberOption(ctx.options, analysis.id, 'budget', 100 * DEFAULT_BUDGET, { min: 0, max: 100 }) / 100;
      const goal = numberOption(ctx.options, analysis.id, 'goal', 100 * DEFAULT_GOAL, { min: 0, max: 100 }) / 100;
      // A scan of the same model that already ran this method hands its scores over (ANP's masks cost minutes).
      const handed = ctx.previous.get(analysis.id);
      const scored = neuronStateOf(handed) ? handed! : await analysis.run({ ...ctx, progress: (f, s) => ctx.progress(ctx.mode === 'adaptive' ? 0.5 * f : f, s) });
      if (scored === handed) notes.push(`reused the scores of the scan's ${analysis.id} run`);
      const state: NeuronState | undefined = neuronStateOf(scored);
      if (!state) throw new BackdoorLensError('internal', `${analysis.id} returned no neuron ranking`);
      notes.push(...(scored.notes ?? []).filter((n) => n !== state.thresholdChoice));
      const details: Record<string, unknown> = { rule: state.rule, flaggedByRule: state.flagged.length, scored: state.ranking.length };
      let pruned: readonly RankedNeuron[] = state.flagged;
      let mode = ctx.mode;
      if (mode === 'adaptive') {
        const triggers = await triggersFor(ctx, notes);
        if (triggers.length === 0) {
          mode = 'fixed';
          notes.push(`no reversed trigger available (run a scan with a trigger-reversal method, or give clean labelled data): fell back to the fixed threshold (${state.rule})`);
        } else {
          const { outcome, rounds } = await pruneUntilNotReversible(ctx, state.ranking, triggers, goal, budget, notes);
          pruned = outcome.pruned;
          details.reReversalRounds = rounds;
          notes.push(
            `adaptive: pruned ${outcome.pruned.length} neuron(s) in ${analysis.id.toUpperCase()} ranking order; ${outcome.stop}`,
            `reversed trigger success ${pct(outcome.successBefore)} → ${pct(outcome.successAfter)} (goal < ${pct(goal)}); clean accuracy ${pct(outcome.accuracyBefore)} → ${pct(outcome.accuracyAfter)}, budget used ${(100 * outcome.budgetUsed).toFixed(2)} of ${(100 * budget).toFixed(2)} points`,
            `measured as ${outcome.measuredOn}; ${outcome.evaluations} evaluations`,
            `the fixed threshold (${state.rule}) would prune ${state.flagged.length}`,
          );
          Object.assign(details, {
            budget, goal, budgetUsed: outcome.budgetUsed, accuracyBefore: outcome.accuracyBefore, accuracyAfter: outcome.accuracyAfter,
            triggerSuccessBefore: outcome.successBefore, triggerSuccessAfter: outcome.successAfter, reachedGoal: outcome.reachedGoal, evaluations: outcome.evaluations,
          });
        }
      }
      if (mode === 'fixed') notes.push(`fixed threshold: pruned the ${state.flagged.length} neuron(s) flagged by ${state.rule}`);
      if (state.thresholdChoice && mode === 'fixed') notes.push(`threshold: ${state.thresholdChoice}`);
      details.mode = mode;
      details.u = ctx.u;
      const model = pruneNeurons(ctx.model.onnx, pruned, `${ctx.model.path} (${analysis.id} pruned)`);
      return { method: analysis.id, model, pruned: toPruned(pruned), notes, details };
    },
  };
}
