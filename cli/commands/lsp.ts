/** `backdoor-lens lsp --stdio`: the language server for editors other than VS Code (Neovim, Helix, …). */
import { join } from 'node:path';
import type { CommandResult } from '../main';
import { UsageError } from '../options';

export const lspHelp = `Usage: backdoor-lens lsp --stdio
Runs the Backdoor Lens language server on standard input and output (JSON-RPC, LSP 3.17), the same
server the VS Code extension starts. Checkpoints are scanned with the command
'backdoorLens.server.scan' (argument: the file's URI); fixes with 'backdoorLens.server.applyFix'
({ uri, method }). Settings come from the client's 'backdoorLens' section and backdoor-lens.json.`;

/** Starts the server and resolves only when the client ends the session (exit notification or closed input). */
export async function lspCommand(args: string[]): Promise<CommandResult> {
  if (args.includes('--help') || args.includes('-h')) return { stdout: lspHelp, exitCode: 0 };
  if (!args.includes('--stdio')) throw new UsageError('lsp needs --stdio (the only transport it speaks)');
  const { createConnection, ProposedFeatures, StreamMessageReader, StreamMessageWriter } = await import('vscode-languageserver/node');
  const { startServer } = await import('../../server/src/server');
  const connection = createConnection(ProposedFeatures.all, new StreamMessageReader(process.stdin), new StreamMessageWriter(process.stdout));
  // The worker bundle sits beside the CLI bundle in dist/.
  startServer(connection, { workerPath: join(__dirname, 'worker.js') });
  await new Promise<never>(() => undefined);
  return { stdout: '', exitCode: 0 };
}
