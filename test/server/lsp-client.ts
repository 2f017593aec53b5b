/**
 * A real JSON-RPC client for the language server under test: spawns the built dist/server.js over
 * stdio, answers the server's requests the way an editor does, and records what it publishes.
 * `connectClient` speaks to a server process started elsewhere (the soak test starts the CLI's).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node';
import {
  InitializeRequest,
  InitializedNotification,
  PublishDiagnosticsNotification,
  ShutdownRequest,
  ExitNotification,
  type Diagnostic,
  type InitializeParams,
  type InitializeResult,
  type WorkDoneProgressBegin,
  type WorkDoneProgressReport,
  type WorkDoneProgressEnd,
} from 'vscode-languageserver-protocol';
import type { InitializationOptions } from '../../protocol/lsp';

const root = join(__dirname, '..', '..');

let built = false;
/** Builds the server bundle once per test process (esbuild; about a second). */
export function buildServer(): string {
  const server = join(root, 'dist', 'server.js');
  if (!built) {
    const r = spawnSync(process.execPath, [join(root, 'tools', 'build.mjs')], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
    built = true;
  }
  if (!existsSync(server) || statSync(server).size === 0) throw new Error('dist/server.js missing after build');
  return server;
}

export type ProgressValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

export interface TestClient {
  connection: MessageConnection;
  initializeResult: InitializeResult;
  process: ChildProcessWithoutNullStreams;
  /** Latest diagnostics per URI. */
  diagnostics: Map<string, Diagnostic[]>;
  /** Every $/progress value per token. */
  progress: Map<string | number, ProgressValue[]>;
  /** Tokens the server created with window/workDoneProgress/create. */
  createdTokens: (string | number)[];
  /** Custom notifications received, by method. */
  notifications: { method: string; params: unknown }[];
  /** Editor settings returned for workspace/configuration ('backdoorLens' section). */
  settings: Record<string, unknown>;
  /** Resolves when diagnostics for the URI satisfy the predicate. */
  waitForDiagnostics(uri: string, predicate?: (d: Diagnostic[]) => boolean, timeoutMs?: number): Promise<Diagnostic[]>;
  stop(): Promise<void>;
  stderr(): string;
}

export const fileUri = (p: string) => pathToFileURL(p).href;

export interface ClientOptions {
  workspace: string;
  init?: InitializationOptions;
  settings?: Record<string, unknown>;
}

/** Builds the server, starts it (or the command in `args`) over stdio and initializes it. */
export async function startClient(options: ClientOptions & { args?: string[] }): Promise<TestClient> {
  const server = buildServer();
  const child = spawn(process.execPath, options.args ?? [server, '--stdio'], { cwd: options.workspace, stdio: ['pipe', 'pipe', 'pipe'] });
  return connectClient(child, options);
}

/** Speaks LSP to a server process already started with piped stdio, and initializes it. */
export async function connectClient(child: ChildProcessWithoutNullStreams, options: ClientOptions): Promise<TestClient> {
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  const diagnostics = new Map<string, Diagnostic[]>();
  const progress = new Map<string | number, ProgressValue[]>();
  const createdTokens: (string | number)[] = [];
  const notifications: { method: string; params: unknown }[] = [];
  const waiters: (() => void)[] = [];
  const client: TestClient = {
    connection,
    initializeResult: undefined as unknown as InitializeResult,
    process: child,
    diagnostics,
    progress,
    createdTokens,
    notifications,
    settings: options.settings ?? {},
    waitForDiagnostics(uri, predicate = () => true, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const d = diagnostics.get(uri);
          if (d && predicate(d)) {
            clearTimeout(timer);
            resolve(d);
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => reject(new Error(`no matching diagnostics for ${uri} within ${timeoutMs} ms; have: ${JSON.stringify(diagnostics.get(uri))}`)), timeoutMs);
        if (!check()) waiters.push(() => void check());
      });
    },
    async stop() {
      try {
        await connection.sendRequest(ShutdownRequest.type);
        await connection.sendNotification(ExitNotification.type);
      } catch {
        // already gone
      }
      connection.dispose();
      if (child.exitCode === null) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, 3000);
          child.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          child.kill();
        });
      }
    },
    stderr: () => stderr,
  };
  connection.onNotification(PublishDiagnosticsNotification.type, (p) => {
    diagnostics.set(p.uri, p.diagnostics);
    for (const w of waiters.splice(0)) w();
  });
  connection.onUnhandledProgress((p) => {
    const list = progress.get(p.token) ?? [];
    list.push(p.value as ProgressValue);
    progress.set(p.token, list);
  });
  connection.onNotification((method: string, params: unknown) => {
    notifications.push({ method, params });
  });
  connection.onRequest('window/workDoneProgress/create', (p: { token: string | number }) => {
    createdTokens.push(p.token);
    return null;
  });
  connection.onRequest('workspace/configuration', (p: { items: { section?: string }[] }) => p.items.map((i) => (i.section === 'backdoorLens' ? client.settings : null)));
  connection.onRequest('client/registerCapability', () => null);
  connection.onRequest('workspace/codeLens/refresh', () => null);
  connection.onRequest('window/showDocument', () => ({ success: true }));
  connection.onRequest('window/showMessageRequest', () => null);
  connection.listen();

  const init: InitializeParams = {
    processId: process.pid,
    rootUri: fileUri(options.workspace),
    workspaceFolders: [{ uri: fileUri(options.workspace), name: 'workspace' }],
    initializationOptions: options.init ?? { outlineDocuments: true },
    capabilities: {
      window: { workDoneProgress: true, showDocument: { support: true } },
      workspace: { configuration: true, didChangeWatchedFiles: { dynamicRegistration: true }, codeLens: { refreshSupport: true }, workspaceFolders: true },
      textDocument: { publishDiagnostics: { relatedInformation: true, codeDescriptionSupport: true, dataSupport: true } },
    },
  };
  client.initializeResult = await connection.sendRequest(InitializeRequest.type, init);
  await connection.sendNotification(InitializedNotification.type, {});
  return client;
}
