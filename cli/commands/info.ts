import { formatInfo } from '../../engine';
import { commonHelp, parse, settingsFor, UsageError } from '../options';
import { openSession, stage, startJob } from '../load';
import type { CommandResult } from '../main';

export const infoHelp = `Usage: backdoor-lens info <model> [--json]
Shows a model's inputs and outputs, op histogram, conv→BN pairs, parameter count, and whether
BatchNormalization was kept or folded into the convolutions.

${commonHelp}`;

export async function infoCommand(args: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(args, {});
  if (values.help) return { stdout: infoHelp, exitCode: 0 };
  if (positionals.length !== 1) throw new UsageError('info takes one model file');
  const s = settingsFor(positionals[0], values);
  const guard = startJob('info', s);
  const session = openSession(s);
  try {
    const info = await stage(guard, 'loading the model', async () => session.info(await session.open(positionals[0], { interrupt: guard.interrupt })));
    return { stdout: values.json ? JSON.stringify(info, null, 2) : formatInfo(info), exitCode: 0 };
  } finally {
    guard.dispose();
    await session.dispose();
  }
}
