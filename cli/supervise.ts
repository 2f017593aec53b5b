/**
 * The CLI runs each job (scan, eval, fix, info) in a child process and watches it from here.
 *
 * onnxruntime runs a session inside one native call that holds the job's thread: a Loop of 10^15
 * trips or a ConstantOfShape sized from the input's values cannot be stopped by any check in that
 * process, and its memory grows with nobody sampling it. This parent samples the child's resident
 * memory and the clock throughout, and when the child is past --max-memory, or past --time-limit
 * plus a short grace (the child stops itself at the limit when it can, with its partial results),
 * ends it and prints the one-line reason with the stage the child last reported.
 */
import { spawn } from 'node:child_process';
import { memoryLimitError, ProcessWatchdog, timeLimitError, watchdogGraceMs, type JobLimits } from '../engine';
import { exitCodes } from './exit-codes';

/** Commands that run a job worth supervising. */
const jobCommands = new Set(['scan', 'eval', 'fix', 'info']);

export function shouldSupervise(argv: readonly string[]): boolean {
  if (process.env.BACKDOOR_LENS_SUPERVISED === '1' || process.env.BACKDOOR_LENS_NO_SUPERVISOR === '1') return false;
  if (!jobCommands.has(argv[0] ?? '')) return false;
  return !argv.includes('--help') && !argv.includes('-h');
}

type ChildMessage = ({ type: 'limits'; command: string } & JobLimits) | { type: 'stage'; stage: string } | { type: 'done' };

/** Runs the command line in a watched child; resolves to the exit code. */
export function supervise(argv: readonly string[], entry = process.argv[1]): Promise<number> {
  return new Promise((resolve) => {
    // The limits count from the command's start (this process's), and the child's clock is set back to it.
    const startedAt = Math.round(Date.now() - process.uptime() * 1000);
    const child = spawn(process.execPath, [...process.execArgv, entry, ...argv], {
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, BACKDOOR_LENS_SUPERVISED: '1', BACKDOOR_LENS_STARTED_AT: String(startedAt) },
    });
    let command = argv[0];
    let stage = 'start-up';
    let limits: JobLimits = {};
    let watchdog: ProcessWatchdog | undefined;
    let ended: string | undefined;
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'stage') stage = m.stage;
      else if (m.type === 'done') watchdog?.stop();
      else if (m.type === 'limits' && !watchdog && child.pid) {
        command = m.command;
        limits = { timeLimitMs: m.timeLimitMs, maxMemoryMB: m.maxMemoryMB };
        watchdog = new ProcessWatchdog(child.pid, limits, (breach) => {
          ended =
            breach.kind === 'memory'
              ? memoryLimitError(command, limits.maxMemoryMB!, stage, breach.usedMB ?? 0).message
              : timeLimitError(command, limits.timeLimitMs!, stage, ' (the job did not stop at its own checks, e.g. inside onnxruntime, so it was ended)').message;
          child.kill('SIGKILL');
        }, { startedAt, graceMs: watchdogGraceMs(limits.timeLimitMs ?? 0) });
      }
    });
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
    const onInt = forward('SIGINT'), onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    const finish = (code: number) => {
      watchdog?.stop();
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(code);
    };
    child.on('error', (e) => {
      process.stderr.write(`backdoor-lens: cannot start the job process: ${e.message}\n`);
      finish(exitCodes.internal);
    });
    child.on('exit', (code, signal) => {
      if (ended) {
        process.stderr.write(`backdoor-lens: ${ended}\n`);
        finish(exitCodes.limit);
      } else if (signal) {
        process.stderr.write(`backdoor-lens: ${command} ended by signal ${signal} during ${stage}\n`);
        finish(exitCodes.cancelled);
      } else finish(code ?? exitCodes.internal);
    });
  });
}
