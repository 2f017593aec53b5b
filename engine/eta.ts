/**
 * Time left in a job, from how fast its fraction has moved so far (smoothed, so it does not jump
 * each report). Every front end shows this one estimate over the job's overall fraction (the
 * editor's progress, the CLI's progress line), so no stage of the engine adds its own.
 */
export class Eta {
  private readonly started = Date.now();
  private rate?: number;

  /** Seconds left, or undefined while there is too little to go on. */
  update(fraction: number, now = Date.now()): number | undefined {
    const elapsed = now - this.started;
    if (fraction <= 0.02 || elapsed < 2000) return undefined;
    const rate = fraction / elapsed;
    this.rate = this.rate === undefined ? rate : 0.8 * this.rate + 0.2 * rate;
    return Math.max(0, (1 - fraction) / this.rate / 1000);
  }
}

/** "about 20 s left", "about 2 min left". */
export function etaText(seconds: number | undefined): string {
  if (seconds === undefined) return '';
  if (seconds < 10) return 'a few seconds left';
  if (seconds < 90) return `about ${Math.round(seconds / 5) * 5} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

/** The stage text with the time left, when there is an estimate: "Trigger reversal step 40/900 — about 20 s left". */
export function withEta(stage: string, seconds: number | undefined): string {
  return seconds === undefined ? stage : `${stage} — ${etaText(seconds)}`;
}
