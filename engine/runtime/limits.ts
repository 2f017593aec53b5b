/**
 * The time and memory limits of one job (a scan, an evaluation, a fix, a model description).
 *
 * A JobGuard turns the limits into an AbortSignal that every stage checks, remembers the stage the
 * job is in ("shape inference", "patch pair reversal 37/90"), and words the stop the same way for
 * every command. Between stages it samples the resident memory itself; while onnxruntime runs (a
 * native call that holds the thread) nothing in this process can, so the CLI and the language server
 * also watch the job from outside (ProcessWatchdog) and end it there.
 */
import { readFileSync } from 'node:fs';
import { BackdoorLensError } from '../errors';

/** Every command stops after this long unless told otherwise (0 = no limit). */
export const defaultTimeLimitSeconds = 1800;

export interface JobLimits {
  /** Stop after this many milliseconds (undefined or 0: no limit). */
  timeLimitMs?: number;
  /** Stop when the process's resident memory passes this many MiB. */
  maxMemoryMB?: number;
}

export interface JobGuardOptions extends JobLimits {
  /** The command, for messages: "scan stopped: …", "eval stopped: …". */
  command: string;
  /** An outer cancellation (the user, the editor). */
  signal?: AbortSignal;
  /** How often memory is sampled between stages, in ms. */
  sampleMs?: number;
  /** The limit to name in messages when timeLimitMs is what is left of it (the job started earlier). */
  reportedTimeLimitMs?: number;
  /** Told each new stage (the CLI forwards it to its watchdog, which names it if it must end the job). */
  onStage?(stage: string): void;
}

/**
 * A check a long synchronous stage calls now and then (shape inference over a million nodes): it
 * throws when the job must stop. An AbortSignal has this method, but its time limit only fires when
 * the event loop turns, which a synchronous stage never lets happen; a JobGuard's reads the clock.
 */
export interface Interrupt {
  throwIfAborted(): void;
}

export class JobGuard {
  readonly signal: AbortSignal;
  /** For synchronous stages: checks the clock and memory on each call. */
  readonly interrupt: Interrupt = { throwIfAborted: () => this.check() };
  private readonly expired = new AbortController();
  private current = 'start-up';
  private readonly timeout?: AbortSignal;
  private readonly memory = new AbortController();
  private usedMB = 0;
  private readonly timer?: NodeJS.Timeout;
  readonly startedAt = Date.now();

  constructor(readonly options: JobGuardOptions) {
    this.timeout = options.timeLimitMs ? AbortSignal.timeout(options.timeLimitMs) : undefined;
    if (options.maxMemoryMB) {
      this.timer = setInterval(() => this.sample(), options.sampleMs ?? 100);
      this.timer.unref();
    }
    const signals = [options.signal, this.timeout, this.expired.signal, this.memory.signal].filter((s): s is AbortSignal => !!s);
    this.signal = AbortSignal.any(signals);
    this.sample();
  }

  /** What the job is doing, as a phrase that follows "during". */
  get stage(): string {
    return this.current;
  }

  set stage(text: string) {
    if (text === this.current) return;
    this.current = text;
    this.options.onStage?.(text);
  }

  /** Checks the clock and memory now (memory also on a timer) and throws if the job must stop. */
  check(stage?: string): void {
    if (stage) this.stage = stage;
    const limit = this.options.timeLimitMs;
    if (limit && !this.expired.signal.aborted && Date.now() - this.startedAt >= limit) this.expired.abort();
    this.sample();
    if (this.signal.aborted) throw this.stopped();
  }

  private sample(): void {
    const max = this.options.maxMemoryMB;
    if (!max || this.memory.signal.aborted) return;
    const rss = process.memoryUsage.rss();
    if (rss > max * 2 ** 20) {
      this.usedMB = Math.round(rss / 2 ** 20);
      this.memory.abort();
    }
  }

  /** Which limit stopped the job, if one did. */
  get limitReached(): 'time' | 'memory' | undefined {
    return this.timeout?.aborted || this.expired.signal.aborted ? 'time' : this.memory.signal.aborted ? 'memory' : undefined;
  }

  /** The error for the stop: a limit (naming it and the stage) or a cancellation. */
  stopped(): BackdoorLensError {
    const { command, timeLimitMs, reportedTimeLimitMs, maxMemoryMB } = this.options;
    if (this.limitReached === 'time') return timeLimitError(command, reportedTimeLimitMs ?? timeLimitMs!, this.stage);
    if (this.limitReached === 'memory') return memoryLimitError(command, maxMemoryMB!, this.stage, this.usedMB);
    return new BackdoorLensError('cancelled', `${command} cancelled during ${this.stage}`);
  }

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

export function timeLimitError(command: string, timeLimitMs: number, stage: string, extra = ''): BackdoorLensError {
  return new BackdoorLensError('limit', `${command} stopped: time limit ${Number((timeLimitMs / 1000).toFixed(3))} s reached during ${stage}${extra}; raise timeLimitSeconds (--time-limit on the command line) to let it finish`);
}

export function memoryLimitError(command: string, maxMemoryMB: number, stage: string, usedMB: number): BackdoorLensError {
  return new BackdoorLensError('limit', `${command} stopped: memory limit ${maxMemoryMB} MB reached during ${stage} (the process used ${usedMB} MB); raise limits.maxMemoryMB (--max-memory on the command line), or ${command} with less data`);
}

/** Resident memory of a process in bytes, from /proc (Linux); undefined where it cannot be read. */
export function residentBytes(pid: number): number | undefined {
  try {
    const statm = readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ');
    return Number(statm[1]) * 4096;
  } catch {
    return undefined;
  }
}

export interface WatchdogBreach {
  kind: 'time' | 'memory';
  usedMB?: number;
}

/**
 * Watches another process (the CLI's job, the language server's engine worker) and reports when it
 * passes its limits, so the watcher can end it: this works while the job is inside onnxruntime, where
 * the job's own checks cannot run. The time limit here is the job's own plus a grace, so a job that
 * reaches its limit at a check stops itself, with its partial results, before the watchdog acts.
 */
export class ProcessWatchdog {
  private readonly timer: NodeJS.Timeout;
  private done = false;
  peakBytes = 0;

  constructor(pid: number, limits: JobLimits, onBreach: (b: WatchdogBreach) => void, options: { sampleMs?: number; graceMs?: number; startedAt?: number } = {}) {
    const started = options.startedAt ?? Date.now();
    const deadline = limits.timeLimitMs ? started + limits.timeLimitMs + (options.graceMs ?? watchdogGraceMs(limits.timeLimitMs)) : Infinity;
    const tick = () => {
      if (this.done) return;
      const rss = residentBytes(pid);
      if (rss !== undefined) this.peakBytes = Math.max(this.peakBytes, rss);
      if (limits.maxMemoryMB && rss !== undefined && rss > limits.maxMemoryMB * 2 ** 20) {
        this.stop();
        onBreach({ kind: 'memory', usedMB: Math.round(rss / 2 ** 20) });
      } else if (Date.now() > deadline) {
        this.stop();
        onBreach({ kind: 'time' });
      }
    };
    this.timer = setInterval(tick, options.sampleMs ?? 50);
    this.timer.unref();
  }

  stop(): void {
    this.done = true;
    clearInterval(this.timer);
  }
}

/** How long after the time limit the watchdog waits for the job to stop itself: 8% of it, 0.25 s at least. */
export function watchdogGraceMs(timeLimitMs: number): number {
  return Math.max(250, Math.round(0.08 * timeLimitMs));
}
