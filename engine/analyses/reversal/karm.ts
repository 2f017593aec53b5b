/**
 * Which trigger reversals to advance next, and the statistics the outlier test then sees.
 *
 * 'plain' (the reference schedule) runs every arm round-robin until its own stop rule; the test
 * uses each arm's final statistic 1/size.
 *
 * 'bandit' is successive elimination in the spirit of K-Arm: arms advance in lockstep, so that at
 * every step all of them can be compared at the same number of steps (the anomaly index is
 * scale-free, so comparing at equal steps is fair while comparing a finished arm with unfinished
 * ones is not):
 *  1. warm-up: every arm runs `warmup` steps;
 *  2. from then on, an arm that sits below the median statistic and is not shrinking faster than
 *     the median running arm cannot become an outlier (outliers are far above the median) and
 *     stops; for later comparisons its statistic grows with the median growth of the arms still
 *     running, which keeps it where it was in the ranking;
 *  3. at step `decideAt` the outlier test runs on the statistics at that common step; every arm
 *     stops except the outliers, which run on to their own stop rule so the reported triggers
 *     are as small as the plain schedule's, and the undecided arms above the median with an
 *     anomaly index above `confirm`·threshold. A weak backdoor pair can look like a natural
 *     neighbour at a common step and only separate near its own stop (the all-to-all fixture's
 *     3 → 4: index 4.3 at step 60, 7.2 in the plain schedule);
 *  4. the final test then uses the final statistics of the arms that ran on; every other arm's
 *     statistic grows from the decision step by the median growth of the undecided arms that ran
 *     on (ordinary arms near the top, unlike the outliers; at least three, topped up from the next
 *     arms down), as a plain run would have let it grow.
 */
import { madAnomaly, median } from '../stats/mad';

export interface Arm {
  readonly id: number;
  readonly running: boolean;
  readonly step: number;
  /** Current size estimate (best successful trigger size, else the latest one). */
  readonly size: number;
  /** The size estimate as it was after `step` steps (1 ≤ step ≤ this.step). */
  sizeAt(step: number): number;
  abandon(): void;
}

export interface SchedulerOptions {
  mode: 'plain' | 'bandit';
  /** Arms advanced per round (one batched gradient call holds their mini-batches). */
  armsPerRound: number;
  /** Steps every arm gets before any may stop. */
  warmup: number;
  /** The common step at which the bandit runs the outlier test. */
  decideAt: number;
  /** Anomaly index above which an arm is an outlier. */
  threshold: number;
  /** Steps over which shrink rates are measured. */
  trendWindow: number;
  /** Arms with an anomaly index above confirm·threshold at the decision step run on to their own stop before the final test. */
  confirm: number;
}

export const defaultSchedulerOptions: SchedulerOptions = { mode: 'bandit', armsPerRound: 128, warmup: 30, decideAt: 50, threshold: 7, trendWindow: 10, confirm: 0.5 };

/** log(size k−w steps ago / size now) per step: how fast an arm's size is still shrinking. */
export function shrinkRate(arm: Arm, window: number, step = arm.step): number {
  if (step <= window) return 0;
  return Math.log(arm.sizeAt(step - window) / arm.sizeAt(step)) / window;
}

/** Fewest arms whose median growth stands for the ordinary arms' growth after the decision step. */
const MIN_CONFIRMING = 3;

export class TriggerScheduler<A extends Arm> {
  rounds = 0;
  /** Arms stopped by the bandit before the decision, with the step and statistic they had. */
  readonly dropped = new Map<number, { step: number; statistic: number }>();
  /** Arms the bandit found to be outliers (they run on after the decision). */
  readonly outliers = new Set<number>();
  /** Undecided arms near the top that run on to their own stop before the final test. */
  readonly confirming = new Set<number>();
  private decided?: { step: number; stats: number[] };

  constructor(
    readonly arms: readonly A[],
    readonly options: SchedulerOptions,
  ) {}

  /** The arms to advance by one step next; empty when every arm has stopped. */
  next(): A[] {
    const o = this.options;
    const running = this.arms.filter((a) => a.running);
    if (running.length === 0) return [];
    const leastAdvanced = (list: A[]) => [...list].sort((a, b) => a.step - b.step || a.id - b.id).slice(0, o.armsPerRound);
    if (o.mode === 'plain' || this.decided) return this.round(leastAdvanced(running));
    const step = Math.min(...running.map((a) => a.step));
    const behind = running.filter((a) => a.step === step);
    if (behind.length < running.length) return this.round(leastAdvanced(behind));
    // Every running arm is at `step`: a common point of comparison.
    if (step >= o.warmup) {
      const stats = this.statisticsAt(step);
      if (step >= o.decideAt) {
        this.decide(step, stats);
        return this.next();
      }
      this.eliminate(step, stats);
    }
    return this.round(leastAdvanced(this.arms.filter((a) => a.running)));
  }

  private round(list: A[]): A[] {
    if (list.length) this.rounds++;
    return list;
  }

  /** Statistics of all arms at a common step: running arms as they are, stopped ones grown with the running median. */
  private statisticsAt(step: number): number[] {
    const running = this.arms.filter((a) => !this.dropped.has(a.id) && a.step >= step);
    const growth = new Map<number, number>();
    const growthSince = (from: number) => {
      if (!growth.has(from)) growth.set(from, median(running.map((a) => a.sizeAt(from) / a.sizeAt(step))));
      return growth.get(from)!;
    };
    return this.arms.map((a) => {
      const d = this.dropped.get(a.id);
      if (d) return d.statistic * growthSince(d.step);
      return 1 / a.sizeAt(Math.min(step, a.step));
    });
  }

  private eliminate(step: number, stats: number[]): void {
    const o = this.options;
    const m = median(stats);
    const running = this.arms.filter((a) => a.running);
    const rates = new Map(running.map((a) => [a.id, shrinkRate(a, o.trendWindow, step)]));
    const medianRate = median([...rates.values()]);
    this.arms.forEach((a, i) => {
      if (!a.running || stats[i] >= m || rates.get(a.id)! > medianRate) return;
      this.dropped.set(a.id, { step, statistic: stats[i] });
      a.abandon();
    });
  }

  private decide(step: number, stats: number[]): void {
    const { threshold, confirm } = this.options;
    const { anomalyIndex, median: m } = madAnomaly(stats);
    this.decided = { step, stats };
    this.arms.forEach((a, i) => {
      if (stats[i] > m && anomalyIndex[i] > threshold) this.outliers.add(a.id);
      else if (stats[i] > m && anomalyIndex[i] > confirm * threshold) this.confirming.add(a.id);
    });
    if (this.confirming.size > 0) {
      // The growth of the others is read off the confirming arms, so a lone weak backdoor pair must
      // not be its own yardstick: the next arms down the ranking join until there are three.
      const below = this.arms
        .map((a, i) => ({ a, s: stats[i] }))
        .filter(({ a }) => a.running && !this.outliers.has(a.id) && !this.confirming.has(a.id))
        .sort((x, y) => y.s - x.s || x.a.id - y.a.id);
      for (const { a } of below.slice(0, Math.max(0, MIN_CONFIRMING - this.confirming.size))) this.confirming.add(a.id);
    }
    for (const a of this.arms) if (!this.outliers.has(a.id) && !this.confirming.has(a.id)) a.abandon();
  }

  /**
   * The statistic of every arm for the outlier test: the final 1/size in the plain schedule. In the
   * bandit schedule, the statistics at the decision step when no arm needed confirming; otherwise
   * the final 1/size of the arms that ran on and the decision-step statistic of the others grown
   * by the confirming arms' median growth.
   */
  statistics(): number[] {
    const d = this.decided;
    if (this.options.mode === 'plain' || !d) return this.arms.map((a) => 1 / a.size);
    if (this.confirming.size === 0) return d.stats;
    const growth = median(this.arms.filter((a) => this.confirming.has(a.id)).map((a) => a.sizeAt(Math.min(d.step, a.step)) / a.size));
    return this.arms.map((a, i) => (this.outliers.has(a.id) || this.confirming.has(a.id) ? 1 / a.size : d.stats[i] * growth));
  }
}
