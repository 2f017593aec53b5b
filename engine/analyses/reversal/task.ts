/**
 * One trigger reversal (a class pair, or a target label for Neural Cleanse) as a resumable state
 * machine: Adam on the trigger's raw parameters, Neural Cleanse's adaptive λ schedule, the
 * smallest trigger that reached the success threshold, and NC's early stop. Each step consumes
 * one mini-batch's gradient; the task never calls the network itself, so a scheduler can advance
 * many tasks in one batched gradient call and stop any of them between steps. A task's trajectory
 * depends only on its own seed and gradients, not on which tasks share its batches.
 */
import { SeededRandom } from '../stats/random';
import type { Objective } from './objectives';

export interface ScheduleOptions {
  /** Adam step size (NC: 0.1 for the patch). */
  lr: number;
  beta1: number;
  beta2: number;
  /** Images of the source set per step. */
  batchSize: number;
  /** Share of the batch that must reach the target for a step to count as a success (NC: 0.99). */
  successThreshold: number;
  /** λ set once the trigger first succeeds `patience` steps in a row (NC: 1e-3). */
  initCost: number;
  patience: number;
  /** λ·up after `patience` successes in a row, λ/down after as many failures (NC: 1.5 and 1.5^1.5). */
  costUp: number;
  costDown: number;
  /** Steps without an improvement of the best size before stopping, once λ moved both ways (NC: 25). */
  earlyStopPatience: number;
  /** An improvement must shrink the best size below this fraction of the previous best. */
  earlyStopThreshold: number;
  /** Hard cap on steps. */
  maxSteps: number;
}

/**
 * Neural Cleanse's optimiser and λ schedule, with two deviations for step-wise (not epoch-wise)
 * λ updates on small batches: λ starts at 5e-2 instead of 1e-3 once the trigger works, and the
 * step cap. See docs/findings/BL001.md for the measurements behind them.
 */
export const patchSchedule: ScheduleOptions = {
  lr: 0.1, beta1: 0.5, beta2: 0.9, batchSize: 4, successThreshold: 0.99, initCost: 5e-2, patience: 5,
  costUp: 1.5, costDown: 1.5 ** 1.5, earlyStopPatience: 25, earlyStopThreshold: 0.99, maxSteps: 200,
};

export const perturbationSchedule: ScheduleOptions = { ...patchSchedule, lr: 0.01, successThreshold: 0.9, initCost: 1e-2 };

/** The warp field moves in pixels: a step of 0.02 px lets it reach a 1-pixel displacement in 50 steps. */
export const warpSchedule: ScheduleOptions = { ...perturbationSchedule, lr: 0.02 };

export function scheduleFor(kind: 'patch' | 'perturbation' | 'warp'): ScheduleOptions {
  return kind === 'patch' ? patchSchedule : kind === 'warp' ? warpSchedule : perturbationSchedule;
}

export type TaskStatus = 'running' | 'converged' | 'step-limit' | 'abandoned';

export interface TaskSnapshot {
  step: number;
  /** Size of the trigger at this step's forward pass. */
  norm: number;
  success: number;
  lambda: number;
}

export class ReversalTask {
  step = 0;
  lambda = 0;
  status: TaskStatus = 'running';
  /** Smallest size among steps that reached the success threshold. */
  bestNorm = Infinity;
  bestParams?: Float64Array;
  bestStep = -1;
  /** Size at the latest forward pass (whether or not it succeeded). */
  lastNorm: number;
  readonly history: TaskSnapshot[] = [];
  /** size after k steps at index k − 1. */
  private readonly sizes: number[] = [];
  private readonly m: Float64Array;
  private readonly v: Float64Array;
  private readonly order: number[];
  private cursor = 0;
  private setCounter = 0;
  private upCounter = 0;
  private downCounter = 0;
  private upFlag = false;
  private downFlag = false;
  private stopCounter = 0;
  private stopBest = Infinity;

  constructor(
    readonly id: number,
    readonly target: number,
    /** Sample indices the trigger must move to the target. */
    readonly images: readonly number[],
    readonly objective: Objective,
    readonly options: ScheduleOptions,
    seed: number,
    /** Per-image targets, for one trigger shared by several pairs; default: `target` for every image. */
    private readonly targets?: ReadonlyMap<number, number>,
    /**
     * Untargeted: the trigger must move each image away from its true class, to any other (the
     * shape of an all-to-all backdoor); `target` is then only an id, and success counts the images
     * that left their class.
     */
    readonly away = false,
  ) {
    if (images.length === 0) throw new Error(`reversal task ${id} has no images`);
    this.m = new Float64Array(objective.params.length);
    this.v = new Float64Array(objective.params.length);
    this.order = new SeededRandom(seed).shuffle(images);
    this.lastNorm = objective.norm();
  }

  /** The class the trigger must send image `i` to. */
  targetOf(i: number): number {
    return this.targets?.get(i) ?? this.target;
  }

  get running(): boolean {
    return this.status === 'running';
  }

  /** The sample indices of the next step: the next slice of a fixed shuffled cycle. */
  nextBatch(): number[] {
    const b = Math.min(this.options.batchSize, this.order.length);
    return Array.from({ length: b }, (_, i) => this.order[(this.cursor + i) % this.order.length]);
  }

  /**
   * Completes one step: `dataGrad` holds ∂(mean CE over the batch)/∂params from the network,
   * `success` the share of the batch classified as the target at this step's forward pass.
   */
  update(dataGrad: Float64Array, success: number): void {
    if (!this.running) throw new Error(`reversal task ${this.id} is ${this.status}`);
    const o = this.options;
    const norm = this.objective.norm();
    this.lastNorm = norm;
    this.history.push({ step: this.step, norm, success, lambda: this.lambda });
    const ok = success >= o.successThreshold;
    if (ok && norm < this.bestNorm) {
      this.bestNorm = norm;
      this.bestParams = Float64Array.from(this.objective.params);
      this.bestStep = this.step;
    }
    this.sizes.push(Number.isFinite(this.bestNorm) ? this.bestNorm : norm);

    // Adam on CE + λ·R.
    this.objective.addPenaltyGradient(this.lambda, dataGrad);
    const t = this.step + 1;
    const params = this.objective.params;
    const c1 = 1 - o.beta1 ** t, c2 = 1 - o.beta2 ** t;
    for (let i = 0; i < params.length; i++) {
      const g = dataGrad[i];
      this.m[i] = o.beta1 * this.m[i] + (1 - o.beta1) * g;
      this.v[i] = o.beta2 * this.v[i] + (1 - o.beta2) * g * g;
      params[i] -= (o.lr * (this.m[i] / c1)) / (Math.sqrt(this.v[i] / c2) + 1e-8);
    }
    this.objective.refresh();
    this.cursor = (this.cursor + Math.min(o.batchSize, this.order.length)) % this.order.length;
    this.step = t;

    this.adjustLambda(ok);
    this.checkStop();
  }

  private adjustLambda(ok: boolean): void {
    const o = this.options;
    if (this.lambda === 0) {
      this.setCounter = ok ? this.setCounter + 1 : 0;
      if (this.setCounter >= o.patience) {
        this.lambda = o.initCost;
        this.upCounter = this.downCounter = 0;
        this.upFlag = this.downFlag = false;
      }
      return;
    }
    if (ok) {
      this.upCounter++;
      this.downCounter = 0;
    } else {
      this.downCounter++;
      this.upCounter = 0;
    }
    if (this.upCounter >= o.patience) {
      this.upCounter = 0;
      this.lambda *= o.costUp;
      this.upFlag = true;
    } else if (this.downCounter >= o.patience) {
      this.downCounter = 0;
      this.lambda /= o.costDown;
      this.downFlag = true;
    }
  }

  private checkStop(): void {
    const o = this.options;
    if (Number.isFinite(this.bestNorm)) {
      this.stopCounter = this.bestNorm >= o.earlyStopThreshold * this.stopBest ? this.stopCounter + 1 : 0;
      this.stopBest = Math.min(this.stopBest, this.bestNorm);
    }
    if (this.upFlag && this.downFlag && this.stopCounter >= o.earlyStopPatience) this.status = 'converged';
    else if (this.step >= o.maxSteps) this.status = 'step-limit';
  }

  /** The size the detector uses: the best successful one, else the latest (the trigger never worked). */
  get size(): number {
    return Number.isFinite(this.bestNorm) ? this.bestNorm : this.lastNorm;
  }

  /** The size estimate as it was after `step` steps. */
  sizeAt(step: number): number {
    if (step < 1 || step > this.sizes.length) throw new Error(`reversal task ${this.id} has ${this.sizes.length} steps, not ${step}`);
    return this.sizes[step - 1];
  }

  get succeeded(): boolean {
    return Number.isFinite(this.bestNorm);
  }

  abandon(): void {
    if (this.running) this.status = 'abandoned';
  }
}
