/**
 * The report view: a read-only custom editor for checkpoints. Opening a .onnx (or .pt, .pth,
 * .safetensors) shows its last scan with charts; it follows the server's results as they change.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { ClientCommands, ReportRequest } from '../../protocol/lsp';
import type { FromWebview, ToWebview } from '../../protocol/report-view';

export const REPORT_VIEW_TYPE = 'backdoorLens.report';

export function reportHtml(webview: vscode.Webview, extensionUri: vscode.Uri, title: string): string {
  const nonce = randomBytes(16).toString('base64');
  const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview.js'));
  // Nothing remote: scripts only with this nonce, images only inline (trigger PNGs) or from the extension.
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data:`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  const escaped = title.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Backdoor Lens — ${escaped}</title>
</head>
<body>
<main id="app" data-nonce="${nonce}"><p>Loading the report for ${escaped}…</p></main>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
}

export class ReportEditor implements vscode.CustomReadonlyEditorProvider {
  private readonly panels = new Map<string, Set<vscode.WebviewPanel>>();

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly client: LanguageClient,
  ) {}

  register(): void {
    this.context.subscriptions.push(
      vscode.window.registerCustomEditorProvider(REPORT_VIEW_TYPE, this, { webviewOptions: { retainContextWhenHidden: true }, supportsMultipleEditorsPerDocument: true }),
    );
  }

  openCustomDocument(uri: vscode.Uri): vscode.CustomDocument {
    return { uri, dispose: () => undefined };
  }

  resolveCustomEditor(document: vscode.CustomDocument, panel: vscode.WebviewPanel): void {
    const key = document.uri.toString();
    const webview = panel.webview;
    webview.options = { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(this.context.extensionUri, 'dist')] };
    webview.html = reportHtml(webview, this.context.extensionUri, document.uri.path.split('/').pop() ?? 'model');
    const set = this.panels.get(key) ?? new Set();
    set.add(panel);
    this.panels.set(key, set);
    panel.onDidDispose(() => {
      set.delete(panel);
      if (set.size === 0) this.panels.delete(key);
    });
    webview.onDidReceiveMessage((m: FromWebview) => {
      switch (m.type) {
        case 'ready':
          void this.refreshPanel(document.uri, panel);
          break;
        case 'scan':
          void vscode.commands.executeCommand(ClientCommands.scan, document.uri);
          break;
        case 'fix':
          void vscode.commands.executeCommand(ClientCommands.applyFix, { uri: document.uri.toString(), method: m.method });
          break;
        case 'openOutline':
          void vscode.commands.executeCommand(ClientCommands.openOutline, document.uri);
          break;
        case 'chooseData':
          void vscode.commands.executeCommand(ClientCommands.chooseData, document.uri);
          break;
        case 'openDoc':
          void vscode.commands.executeCommand(ClientCommands.openFindingDoc, m.code);
          break;
        case 'showLog':
          void vscode.commands.executeCommand(ClientCommands.showLog);
          break;
        case 'openFile':
          void vscode.commands.executeCommand('vscode.openWith', vscode.Uri.parse(m.uri), REPORT_VIEW_TYPE);
          break;
      }
    });
  }

  /** The server says this checkpoint's results changed. */
  async refresh(uri: vscode.Uri): Promise<void> {
    const panels = this.panels.get(uri.toString());
    if (!panels) return;
    await Promise.all([...panels].map((p) => this.refreshPanel(uri, p)));
  }

  private async refreshPanel(uri: vscode.Uri, panel: vscode.WebviewPanel): Promise<void> {
    const view = await this.client.sendRequest(ReportRequest, { uri: uri.toString() });
    await panel.webview.postMessage({ type: 'view', view } satisfies ToWebview);
  }
}
