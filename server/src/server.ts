/**
 * The language server's wiring: capabilities, LSP handlers and custom requests, each delegating to
 * its feature module. `backdoor-lens lsp --stdio` and the VS Code client both start it.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  CodeActionKind,
  CodeLensRefreshRequest,
  DidChangeWatchedFilesNotification,
  ErrorCodes,
  FileChangeType,
  LSPErrorCodes,
  ResponseError,
  TextDocumentSyncKind,
  type CancellationToken,
  type Connection,
  type InitializeParams,
  type InitializeResult,
} from 'vscode-languageserver';
import {
  DebugMemoryRequest,
  FixOffersRequest,
  FixRequest,
  OutlineRequest,
  ReportChangedNotification,
  ReportRequest,
  ScanRequest,
  ServerCommands,
  type ApplyFixArgs,
  type DebugMemoryReport,
  type InitializationOptions,
} from '../../protocol/lsp';
import type { ReportView } from '../../protocol/report-view';
import { TOOL_VERSION } from '../../engine';
import type { CheckpointState } from './checkpoints';
import { codeActionsFor, codeLensesFor, offersOf } from './features/fix-actions';
import { changeOf, reportViewOf } from './features/report-view';
import { diagnosticsFor, type DiagnosticOptions } from './features/diagnostics';
import { hoverFor } from './features/hover';
import { startProgress } from './features/progress';
import { JobQueue } from './jobs/queue';
import { JobFailure, WorkerHost } from './jobs/worker-host';
import { CheckpointService } from './service';
import { resolveSettings, type EditorSettings } from './settings';
import { checkpointPathOfOutline, fileUri, isCheckpointPath, isOutlineUri, pathOf } from './uris';

export interface ServerOptions {
  /** dist/worker.js (the engine worker thread). */
  workerPath: string;
  /** Seconds a cancelled job may take to stop before its thread is terminated. */
  cancelGraceMs?: number;
}

function defaultDocsBase(): string {
  for (const dir of [join(__dirname, '..', 'docs', 'findings'), join(__dirname, '..', '..', 'docs', 'findings')]) {
    if (existsSync(dir)) return pathToFileURL(dir).href;
  }
  return pathToFileURL(join(__dirname, '..', 'docs', 'findings')).href;
}

/** What startServer hands back: the way to end the engine worker when the connection ends. */
export interface ServerHandle {
  dispose(): Promise<void>;
}

export function startServer(connection: Connection, options: ServerOptions): ServerHandle {
  const host = new WorkerHost(options.workerPath, { graceMs: options.cancelGraceMs, log: (line) => connection.console.info(line) });
  const queue = new JobQueue(host);
  let init: InitializationOptions = {};
  let workspaceRoots: string[] = [];
  let capabilities: InitializeParams['capabilities'] = {};
  let diagnosticOptions: DiagnosticOptions = { outlineDocuments: false, docsBase: defaultDocsBase() };
  /** Outline URIs that carried diagnostics, so they are cleared when results go. */
  const published = new Set<string>();

  const workspaceRootFor = (path: string) => workspaceRoots.filter((r) => path === r || path.startsWith(r.endsWith('/') ? r : `${r}/`)).sort((a, b) => b.length - a.length)[0];

  const service = new CheckpointService(queue, {
    async settingsFor(path) {
      let editor: EditorSettings = {};
      if (capabilities.workspace?.configuration) {
        editor = ((await connection.workspace.getConfiguration({ scopeUri: fileUri(path), section: 'backdoorLens' })) as EditorSettings | null) ?? {};
      }
      return resolveSettings(path, editor, workspaceRootFor(path));
    },
    changed: (state) => publish(state),
    progress: (title, abort) => startProgress(connection, { title, serverCreated: !!capabilities.window?.workDoneProgress, abort }),
    log: (line) => connection.console.info(line),
  });

  function publish(state: CheckpointState): void {
    const rendered = service.store.rendered(state);
    const d = diagnosticsFor(state, rendered, diagnosticOptions);
    void connection.sendDiagnostics({ uri: state.uri, diagnostics: d.checkpoint });
    if (d.outline.length || published.has(d.outlineUri)) {
      void connection.sendDiagnostics({ uri: d.outlineUri, diagnostics: d.outline });
      if (d.outline.length) published.add(d.outlineUri);
      else published.delete(d.outlineUri);
    }
    void connection.sendNotification(ReportChangedNotification, changeOf(state));
    if (capabilities.workspace?.codeLens?.refreshSupport) void connection.sendRequest(CodeLensRefreshRequest.type);
  }

  /**
   * Errors as the client sees them: ours (JobFailure, ResponseError) keep their one-line message;
   * anything else is a bug, logged in full to the server's log and answered with a line of ours,
   * never a raw JavaScript message.
   */
  const toResponseError = (e: unknown) => {
    if (e instanceof JobFailure && e.code === 'cancelled') return new ResponseError(LSPErrorCodes.RequestCancelled, 'cancelled');
    if (e instanceof ResponseError) return e;
    if (e instanceof JobFailure) {
      return new ResponseError(e.code !== 'internal' ? ErrorCodes.InvalidParams : ErrorCodes.InternalError, e.message.split('\n')[0], { code: e.code, file: e.file });
    }
    connection.console.error(`Backdoor Lens: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return new ResponseError(ErrorCodes.InternalError, 'Backdoor Lens could not handle this request (an internal error; the details are in the server log)');
  };

  /** A request handler whose failures, however they arise, are answered by toResponseError. */
  const safely =
    <P, R>(handle: (params: P, token: CancellationToken) => R | Promise<R>) =>
    async (params: P, token: CancellationToken): Promise<R> => {
      try {
        return await handle(params, token);
      } catch (e) {
        throw toResponseError(e);
      }
    };

  /** The `uri` a request must carry, or an InvalidParams answer naming the request. */
  const uriOf = (request: string, params: unknown): string => {
    const uri = (params as { uri?: unknown } | null | undefined)?.uri;
    if (typeof uri !== 'string' || !uri) throw new ResponseError(ErrorCodes.InvalidParams, `${request} takes { uri: string }`);
    return uri;
  };

  /** Runs an engine request; request cancellation ($/cancelRequest) aborts the job. */
  const cancellable = <T>(token: { isCancellationRequested: boolean; onCancellationRequested(f: () => void): unknown }, run: (signal: AbortSignal) => Promise<T>) => {
    const abort = new AbortController();
    token.onCancellationRequested(() => abort.abort());
    if (token.isCancellationRequested) abort.abort();
    return run(abort.signal).catch((e) => {
      throw toResponseError(e);
    });
  };

  connection.onInitialize((params: InitializeParams): InitializeResult => {
    capabilities = params.capabilities;
    init = (params.initializationOptions as InitializationOptions | undefined) ?? {};
    workspaceRoots = (params.workspaceFolders ?? []).map((f) => pathOf(f.uri));
    if (!workspaceRoots.length && params.rootUri) workspaceRoots = [pathOf(params.rootUri)];
    diagnosticOptions = { outlineDocuments: !!init.outlineDocuments, docsBase: (init.docsBaseUri ?? defaultDocsBase()).replace(/\/$/, '') };
    return {
      serverInfo: { name: 'backdoor-lens', version: TOOL_VERSION },
      capabilities: {
        // Outline documents are the server's own; the sync only tells it which are open.
        textDocumentSync: { openClose: true, change: TextDocumentSyncKind.None },
        hoverProvider: true,
        codeLensProvider: { resolveProvider: false },
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
        executeCommandProvider: { commands: [ServerCommands.scan, ServerCommands.applyFix] },
        workspace: { workspaceFolders: { supported: true, changeNotifications: true } },
      },
    };
  });

  connection.onInitialized(() => {
    if (capabilities.workspace?.didChangeWatchedFiles?.dynamicRegistration) {
      void connection.client.register(DidChangeWatchedFilesNotification.type, {
        watchers: [{ globPattern: '**/*.{onnx,pt,pth,safetensors}' }, { globPattern: '**/backdoor-lens.json' }],
      });
    }
    if (capabilities.workspace?.workspaceFolders) {
      connection.workspace.onDidChangeWorkspaceFolders((e) => {
        const removed = new Set(e.removed.map((f) => pathOf(f.uri)));
        workspaceRoots = [...workspaceRoots.filter((r) => !removed.has(r)), ...e.added.map((f) => pathOf(f.uri))];
      });
    }
  });

  connection.onDidChangeWatchedFiles(async ({ changes }) => {
    for (const c of changes) {
      if (!c.uri.startsWith('file:')) continue;
      const path = pathOf(c.uri);
      if (basename(path) === 'backdoor-lens.json') continue; // settings are part of the cache key
      if (!isCheckpointPath(path)) continue;
      if (c.type === FileChangeType.Created && !service.store.get(path)) continue;
      await service.invalidate(c.uri, c.type === FileChangeType.Deleted);
    }
  });

  connection.onRequest(ScanRequest, safely((params, token) =>
    cancellable(token, (signal) =>
      service.scan(uriOf(ScanRequest.method, params), {
        force: params.force,
        signal,
        progress: (abort) => startProgress(connection, { title: 'Backdoor Lens: scanning', token: params.workDoneToken, serverCreated: params.workDoneToken === undefined && !!capabilities.window?.workDoneProgress, abort }),
      }),
    ),
  ));

  connection.onRequest(FixRequest, safely((params, token) =>
    cancellable(token, (signal) =>
      service.fix(uriOf(FixRequest.method, params), String(params.method), {
        layer: typeof params.layer === 'string' ? params.layer : undefined,
        signal,
        progress: (abort) => startProgress(connection, { title: `Backdoor Lens: ${params.method}`, token: params.workDoneToken, serverCreated: params.workDoneToken === undefined && !!capabilities.window?.workDoneProgress, abort }),
      }),
    ),
  ));

  connection.onRequest(ReportRequest, safely(async (params): Promise<ReportView> => {
    const path = pathOf(uriOf(ReportRequest.method, params));
    return reportViewOf(path, service.store.get(path));
  }));

  connection.onRequest(FixOffersRequest, safely(async (params) => offersOf(await service.describe(uriOf(FixOffersRequest.method, params)))));

  connection.onRequest(OutlineRequest, safely(async (params) => {
    const uri = uriOf(OutlineRequest.method, params);
    const state = await service.describe(isOutlineUri(uri) ? fileUri(checkpointPathOfOutline(uri)) : uri);
    const rendered = service.store.rendered(state);
    if (rendered) return rendered.text;
    return `${basename(state.path)}\n${state.failure ? `could not be read: ${state.failure.message}` : 'not scanned yet'}\n`;
  }));

  const stateOfDocument = (uri: string) => (isOutlineUri(uri) ? service.store.get(checkpointPathOfOutline(uri)) : uri.startsWith('file:') ? service.store.get(pathOf(uri)) : undefined);

  connection.onHover(({ textDocument, position }) => {
    const state = stateOfDocument(textDocument.uri);
    if (!state || !isOutlineUri(textDocument.uri)) return null;
    const rendered = service.store.rendered(state);
    return rendered ? hoverFor(position.line, rendered, state.outcome?.report) : null;
  });

  connection.onCodeLens(async ({ textDocument }) => {
    if (!isOutlineUri(textDocument.uri)) return [];
    const state = await service.describe(fileUri(checkpointPathOfOutline(textDocument.uri)));
    const rendered = service.store.rendered(state);
    return rendered ? codeLensesFor(state, rendered, !!init.clientCommands) : [];
  });

  connection.onCodeAction(({ textDocument, context }) => {
    const state = stateOfDocument(textDocument.uri);
    return codeActionsFor(context.diagnostics, state, !!init.clientCommands);
  });

  connection.onExecuteCommand(safely(async ({ command, arguments: args }, token) => {
    if (command === ServerCommands.scan) {
      const uri = typeof args?.[0] === 'string' ? args[0] : (args?.[0] as { uri?: string } | undefined)?.uri;
      if (!uri) throw new ResponseError(ErrorCodes.InvalidParams, `${command} takes the checkpoint's URI`);
      return cancellable(token, (signal) => service.scan(uri, { signal, force: true }));
    }
    if (command === ServerCommands.applyFix) {
      const a = args?.[0] as ApplyFixArgs | undefined;
      if (!a?.uri || !a.method) throw new ResponseError(ErrorCodes.InvalidParams, `${command} takes { uri, method[, layer] }`);
      const summary = await cancellable(token, (signal) => service.fix(a.uri, a.method, { signal, layer: a.layer }));
      const written = summary.outputs.map((u) => basename(pathOf(u))).join(' and ');
      // Only a removal is good news; anything else is a warning with its numbers.
      const say = summary.outcome === 'removed' ? connection.window.showInformationMessage.bind(connection.window) : connection.window.showWarningMessage.bind(connection.window);
      void say(`Backdoor Lens: ${summary.headline}${written ? `; wrote ${written}` : '; nothing written'}`);
      // Other editors get the rescan here (served from the fix's own rescan when it ran); the VS Code client runs it with its own progress.
      if (summary.outputs.length) void service.scan(summary.outputs[0], {}).catch(() => undefined);
      return summary;
    }
    throw new ResponseError(ErrorCodes.MethodNotFound, `unknown command ${command}`);
  }));

  connection.onRequest(DebugMemoryRequest, async (): Promise<DebugMemoryReport> => {
    const worker = await host.memory();
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
    return {
      rss, heapUsed, heapTotal, external, arrayBuffers,
      collected: !!gc && (worker?.collected ?? true),
      workerStarts: host.started,
      ...(worker ? { worker: { heapUsed: worker.heapUsed, heapTotal: worker.heapTotal, external: worker.external, arrayBuffers: worker.arrayBuffers, ...(worker.rss !== undefined ? { rss: worker.rss } : {}) } } : {}),
    };
  });

  connection.onShutdown(async () => {
    await host.dispose();
  });

  connection.listen();
  return { dispose: () => host.dispose() };
}
