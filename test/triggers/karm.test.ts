import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shrinkRate, TriggerScheduler, defaultSchedulerOptions, type Arm, type SchedulerOptions } from '../../engine/analyses/reversal/karm';
import { madOutliers } from '../../engine/analyses/stats/mad';
import { SeededRandom } from '../../engine/analyses/stats/random';

/** An arm whose size decays exponentially towards its floor and stops on its own after `stopAt` steps (140–200, as Neural Cleanse's stop rule does on the fixtures). */
class SyntheticArm implements Arm {
  step = 0;
  status: 'running' | 'converged' | 'abandoned' = 'running';
  readonly history: { norm: number }[] = [];
  constructor(readonly id: number, private readonly start: number, private readonly floor: number, private readonly tau: number, private readonly stopAt: number, private readonly noise: SeededRandom) {}
  get running() {
    return this.status === 'running';
  }
  get size() {
    return this.sizeAt(this.step);
  }
  sizeAt(step: number) {
    // The contract ReversalTask enforces: only steps the arm has taken.
    if (step < 1 || step > this.step) throw new Error(`arm ${this.id} has ${this.step} steps, not ${step}`);
    return this.history.slice(0, step).reduce((m, h) => Math.min(m, h.norm), this.start);
  }
  advance() {
    const norm = (this.floor + (this.start - this.floor) * Math.exp(-this.step / this.tau)) * (1 + 0.02 * (this.noise.next() - 0.5));
    this.history.push({ norm });
    this.step++;
    if (this.step >= this.stopAt) this.status = 'converged';
  }
  abandon() {
    if (this.running) this.status = 'abandoned';
  }
}

function population(outliers: number[], seed = 1): SyntheticArm[] {
  const rng = new SeededRandom(seed);
  return Array.from({ length: 90 }, (_, id) => {
    const floor = outliers.includes(id) ? 6 + 4 * rng.next() : 35 + 30 * rng.next();
    return new SyntheticArm(id, 300 + 100 * rng.next(), floor, 8 + 6 * rng.next(), 140 + Math.floor(60 * rng.next()), new SeededRandom(seed * 1000 + id));
  });
}

function run(arms: SyntheticArm[], options: SchedulerOptions): { steps: number; flagged: number[]; scheduler: TriggerScheduler<SyntheticArm> } {
  const scheduler = new TriggerScheduler(arms, options);
  let steps = 0;
  for (let round = 0; round < 100000; round++) {
    const next = scheduler.next();
    if (next.length === 0) break;
    for (const a of next) a.advance();
    steps += next.length;
  }
  const r = madOutliers(scheduler.statistics(), options.threshold, 'above');
  return { steps, flagged: r.flagged.flatMap((f, i) => (f ? [i] : [])), scheduler };
}

test('plain runs every arm to its own stop; bandit finds the same outliers with ≥3× fewer steps', () => {
  const outliers = [3, 14, 25, 36, 47, 58, 69, 80, 81];
  const plain = run(population(outliers), { ...defaultSchedulerOptions, mode: 'plain' });
  const bandit = run(population(outliers), defaultSchedulerOptions);
  assert.deepEqual(plain.flagged, outliers);
  assert.deepEqual(bandit.flagged, plain.flagged);
  assert.ok(plain.steps >= 3 * bandit.steps, `plain ${plain.steps} steps, bandit ${bandit.steps}`);
});

test('with no outliers neither schedule flags anything', () => {
  const plain = run(population([], 7), { ...defaultSchedulerOptions, mode: 'plain' });
  const bandit = run(population([], 7), defaultSchedulerOptions);
  assert.deepEqual(plain.flagged, []);
  assert.deepEqual(bandit.flagged, []);
});

test('bandit: no arm stops before the warm-up, stopped arms sat below the median, outliers run to their own stop', () => {
  const arms = population([5, 6]);
  const { scheduler } = run(arms, defaultSchedulerOptions);
  assert.ok(scheduler.dropped.size > 30, `${scheduler.dropped.size} arms stopped early`);
  for (const [id, { step }] of scheduler.dropped) {
    assert.ok(step >= defaultSchedulerOptions.warmup && step < defaultSchedulerOptions.decideAt, `arm ${id} stopped at ${step}`);
    assert.equal(arms[id].step, step);
  }
  assert.deepEqual([...scheduler.outliers].sort((a, b) => a - b), [5, 6]);
  for (const id of [5, 6]) assert.equal(arms[id].status, 'converged', 'an outlier runs to its own stop');
  for (const a of arms) if (![5, 6].includes(a.id)) assert.ok(a.step <= defaultSchedulerOptions.decideAt, `arm ${a.id} ran ${a.step} steps`);
});

test('the shrink rate is the per-step log decrease over the window', () => {
  const arm = new SyntheticArm(0, 100, 100, 1, 1000, new SeededRandom(1));
  Object.assign(arm, { history: Array.from({ length: 20 }, (_, k) => ({ norm: 100 * Math.exp(-0.05 * (k + 1)) })), step: 20 });
  assert.ok(Math.abs(shrinkRate(arm, 10) - 0.05) < 1e-9);
  assert.equal(shrinkRate(arm, 30), 0);
});

test('a pair that separates only late is confirmed: it runs on to its own stop and is flagged as in the plain schedule', () => {
  // Slow shrinking to a small floor: ordinary-looking at the decision step, an outlier at its own stop.
  const withLateArm = () => {
    const arms = population([], 3);
    arms[10] = new SyntheticArm(10, 300, 8, 18, 180, new SeededRandom(99));
    return arms;
  };
  const plain = run(withLateArm(), { ...defaultSchedulerOptions, mode: 'plain' });
  const bandit = run(withLateArm(), defaultSchedulerOptions);
  const unconfirmed = run(withLateArm(), { ...defaultSchedulerOptions, confirm: Infinity });
  assert.deepEqual(plain.flagged, [10]);
  assert.ok(bandit.scheduler.confirming.has(10) && !bandit.scheduler.outliers.has(10), 'undecided at the decision step');
  assert.equal(bandit.scheduler.confirming.size, 3, 'two ordinary arms join it as the yardstick of growth');
  assert.equal(bandit.scheduler.arms[10].status, 'converged');
  assert.deepEqual(bandit.flagged, plain.flagged);
  assert.deepEqual(unconfirmed.flagged, [], 'without confirmation the bandit misses it');
  assert.ok(plain.steps >= 3 * bandit.steps, `plain ${plain.steps} steps, bandit ${bandit.steps}`);
});

test('class-pair scan options: the decision waits for a step cap close behind it', async () => {
  const { pairScanOptions } = await import('../../engine/analyses/reversal/pairs');
  assert.equal(pairScanOptions({}).scheduler.decideAt, defaultSchedulerOptions.decideAt);
  assert.equal(pairScanOptions({ pairMaxSteps: 60 }).scheduler.decideAt, 60);
  assert.equal(pairScanOptions({ pairMaxSteps: 100 }).scheduler.decideAt, defaultSchedulerOptions.decideAt);
});

test('an arm that stopped on its own before the decision can still be a yardstick of growth', () => {
  const arms = population([], 5);
  arms[20] = new SyntheticArm(20, 300, 25, 10, 40, new SeededRandom(7)); // converges at step 40, near the top
  const { scheduler } = run(arms, defaultSchedulerOptions);
  assert.ok(scheduler.confirming.has(20), 'the early finisher is among the arms the final test reads growth from');
  assert.equal(arms[20].step, 40);
  assert.ok(scheduler.statistics().every((v) => Number.isFinite(v) && v > 0));
});
