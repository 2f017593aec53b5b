/** Starts the Backdoor Lens language server (dist/server.js) over IPC and connects it to VS Code. */
import * as vscode from 'vscode';
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';
import { ClientCommands, OUTLINE_SCHEME, type InitializationOptions } from '../../protocol/lsp';
import { serverEnvironment } from '../../protocol/server-environment';

export function createLanguageClient(context: vscode.ExtensionContext): LanguageClient {
  const module = vscode.Uri.joinPath(context.extensionUri, 'dist', 'server.js').fsPath;
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.ipc, options: { env: serverEnvironment() } },
    debug: { module, transport: TransportKind.ipc, options: { env: serverEnvironment(), execArgv: ['--nolazy', '--inspect=6019'] } },
  };
  const initializationOptions: InitializationOptions = {
    outlineDocuments: true,
    clientCommands: true,
    docsBaseUri: vscode.Uri.joinPath(context.extensionUri, 'docs', 'findings').toString(),
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: OUTLINE_SCHEME }, { scheme: 'file', pattern: '**/*.{onnx,pt,pth,safetensors}' }],
    synchronize: { configurationSection: 'backdoorLens' },
    initializationOptions,
    diagnosticCollectionName: 'backdoor-lens',
    outputChannelName: 'Backdoor Lens',
    middleware: {
      // A finding code links to its page rendered in the Markdown preview, not to the raw .md file.
      handleDiagnostics(uri, diagnostics, next) {
        for (const d of diagnostics) {
          if (typeof d.code === 'object' && /^BL\d{3}$/.test(String(d.code.value))) {
            d.code = { value: d.code.value, target: vscode.Uri.parse(`command:${ClientCommands.openFindingDoc}?${encodeURIComponent(JSON.stringify([String(d.code.value)]))}`) };
          }
        }
        next(uri, diagnostics);
      },
    },
  };
  return new LanguageClient('backdoorLens', 'Backdoor Lens', serverOptions, clientOptions);
}
