/** `backdoor-lens lsp --stdio`: the language server for editors other than VS Code (Neovim, Helix, …). */
import { join } from 'node:path';
import type { CommandResult } from '../main';
import { UsageError } from '../options';

export const lspHelp = `Usage: backdoor-lens lsp --stdio
Runs the Backdoor Lens language server on standard input and output (JSON-RPC, LSP 3.17), the same
server the VS Code extension starts. Checkpoints are scanned with the command
'backdoorLens.server.scan' (argument: the file's URI); fixes with 'backdoorLens.server.applyFix'
({ uri, method }). Settings come from the client's 'backdoorLens' section and backdoor-lens.json.`;

/**
 * Starts the server and resolves when the client ends the session: the exit notification (handled by
 * vscode-languageserver), closed input, or a malformed message header, after which the stream cannot
 * be resynchronised and the connection is closed. The engine worker goes with it.
 */
export async function lspCommand(args: string[]): Promise<CommandResult> {
  if (args.includes('--help') || args.includes('-h')) return { stdout: lspHelp, exitCode: 0 };
  if (!args.includes('--stdio')) throw new UsageError('lsp needs --stdio (the only transport it speaks)');
  const { createConnection, ProposedFeatures, StreamMessageReader, StreamMessageWriter } = await import('vscode-languageserver/node');
  const { startServer } = await import('../../server/src/server');
  const { FramedInput } = await import('../../server/src/transport');
  let malformed: string | undefined;
  const input = process.stdin.pipe(new FramedInput((reason) => (malformed = reason)));
  const connection = createConnection(ProposedFeatures.all, new StreamMessageReader(input), new StreamMessageWriter(process.stdout));
  // The worker bundle sits beside the CLI bundle in dist/.
  const server = startServer(connection, { workerPath: join(__dirname, 'worker.js') });
  await new Promise<void>((resolve) => {
    input.once('end', resolve);
    input.once('close', resolve);
    process.stdin.once('close', resolve);
  });
  await server.dispose();
  connection.dispose();
  // Nothing may keep a server whose client is gone alive: if a handle lingers, exit anyway.
  setTimeout(() => process.exit(malformed ? 1 : 0), 2000).unref();
  if (malformed) return { stdout: '', stderr: `backdoor-lens: lsp: closing the connection: malformed message header (${malformed})`, exitCode: 1 };
  return { stdout: '', exitCode: 0 };
}
