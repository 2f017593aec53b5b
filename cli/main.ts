/** backdoor-lens: scan | fix | eval | info. A thin front end over the engine. */
import { BackdoorLensError, TOOL_VERSION, UnsafeCheckpointError, asBackdoorLensError } from '../engine';
import { exitCodeHelp, exitCodes } from './exit-codes';
import { evalCommand, evalHelp } from './commands/eval';
import { fixCommand, fixHelp } from './commands/fix';
import { infoCommand, infoHelp } from './commands/info';
import { lspCommand, lspHelp } from './commands/lsp';
import { scanCommand, scanHelp } from './commands/scan';
import { shouldSupervise, supervise } from './supervise';

export interface CommandResult {
  stdout: string;
  /** One line for stderr beside a result (a scan stopped at its limit prints its partial report and this; why a fix exits 1). */
  stderr?: string;
  exitCode: number;
}

export { exitCodes, exitCodeHelp, inconclusiveExitCode } from './exit-codes';

const commands: Record<string, { run: (args: string[]) => Promise<CommandResult>; help: string; summary: string }> = {
  scan: { run: scanCommand, help: scanHelp, summary: 'scan a model for backdoors' },
  fix: { run: fixCommand, help: fixHelp, summary: 'repair a model, measure the repair, write it' },
  eval: { run: evalCommand, help: evalHelp, summary: 'clean accuracy and attack success rate' },
  info: { run: infoCommand, help: infoHelp, summary: 'inputs, outputs, ops, conv→BN pairs, BN folded or not' },
  lsp: { run: lspCommand, help: lspHelp, summary: 'language server for editors (--stdio)' },
};

export const mainHelp = `backdoor-lens ${TOOL_VERSION} — scan neural-network checkpoints for backdoors and repair them

Usage: backdoor-lens <command> [options]

Commands:
${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(6)} ${c.summary}`).join('\n')}

Run 'backdoor-lens <command> --help' for a command's options.

${exitCodeHelp}`;

/** Runs a command line; never throws. Errors become one line on stderr and an exit code. */
export async function runCli(argv: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') return { stdout: mainHelp, stderr: '', exitCode: name ? 0 : 4 };
  if (name === '--version' || name === '-v') return { stdout: TOOL_VERSION, stderr: '', exitCode: 0 };
  const command = commands[name];
  if (!command) return { stdout: '', stderr: `backdoor-lens: unknown command '${name}'; commands: ${Object.keys(commands).join(', ')}`, exitCode: 4 };
  try {
    const r = await command.run(args);
    return { stdout: r.stdout, stderr: r.stderr ?? '', exitCode: r.exitCode };
  } catch (e) {
    const err = e instanceof BackdoorLensError ? e : asBackdoorLensError(e);
    const hint = err.code === 'usage' ? ` (see 'backdoor-lens ${name} --help')` : '';
    const stack = err.code === 'internal' && process.env.BACKDOOR_LENS_DEBUG ? `\n${(err.cause as Error)?.stack ?? ''}` : '';
    // A checkpoint refused for an error-level finding (code execution, a hiding archive) is a finding, not a bad file.
    const exitCode = err instanceof UnsafeCheckpointError && err.dangerous ? 1 : exitCodes[err.code];
    return { stdout: '', stderr: `backdoor-lens: ${err.userMessage}${hint}${stack}`, exitCode };
  }
}

/** The process entry point (bin/backdoor-lens.js): a job runs in a watched child process (supervise.ts). */
export async function main(argv = process.argv.slice(2)): Promise<void> {
  if (shouldSupervise(argv)) {
    process.exitCode = await supervise(argv);
    return;
  }
  // The channel to the supervisor must not keep a finished job alive.
  if (process.env.BACKDOOR_LENS_SUPERVISED === '1') process.channel?.unref();
  const { stdout, stderr, exitCode } = await runCli(argv);
  // The job is over (whatever stopped it): the supervisor's watchdog has nothing left to end.
  process.send?.({ type: 'done' });
  if (stdout) process.stdout.write(stdout.endsWith('\n') ? stdout : stdout + '\n');
  if (stderr) process.stderr.write(stderr + '\n');
  process.exitCode = exitCode;
}
