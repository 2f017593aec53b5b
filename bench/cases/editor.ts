/**
 * Right-click → findings on the bundled example, as the editor runs it: the VS Code client's scan
 * request to the language server (default scan settings, the bundled clean sample set as
 * backdoorLens.data) until the verdict diagnostic is published. The end-to-end test records the
 * same path through the real workbench in test-results/e2e/timings.json.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ReportRequest, ScanRequest } from '../../protocol/lsp';
import { fmnist, tempDir } from '../../test/helpers';
import { fileUri, startClient } from '../../test/server/lsp-client';
import type { Row } from '../run';

export const name = 'Editor: right-click → findings on the bundled BadNets example (language server, default scan, target ≤ 15 s)';

export async function run(): Promise<Row[]> {
  const dir = tempDir('bl-bench-editor-');
  mkdirSync(join(dir, 'data'));
  copyFileSync(join(fmnist.badnets, 'model.onnx'), join(dir, 'model.onnx'));
  copyFileSync(join(fmnist.data, 'clean.npz'), join(dir, 'data', 'clean.npz'));
  const client = await startClient({ workspace: dir, settings: { data: 'data/clean.npz' }, init: { outlineDocuments: true, clientCommands: true } });
  const uri = fileUri(join(dir, 'model.onnx'));
  try {
    const rows: Row[] = [];
    for (const [what, force] of [['first scan', true], ['scan again (Scan for Backdoor forces it)', true], ['unchanged file (cache)', false]] as const) {
      const t0 = performance.now();
      // The server publishes the diagnostics before it answers the request.
      const summary = await client.connection.sendRequest(ScanRequest, { uri, force, workDoneToken: `bench-${what}` });
      const seconds = (performance.now() - t0) / 1000;
      const report = (await client.connection.sendRequest(ReportRequest, { uri })).report!;
      const ms = (id: string) => report.methods.find((m) => m.method === id)?.ms;
      rows.push({
        run: what,
        's to findings': seconds,
        verdict: `${summary.verdict} ${report.targets.join(',')}`,
        'pairs s': (ms('pairs') ?? 0) / 1000,
        'other methods s': report.methods.filter((m) => m.method !== 'pairs').reduce((s, m) => s + m.ms, 0) / 1000,
        '≤ 15 s': seconds <= 15 ? 'yes' : 'no',
      });
    }
    return rows;
  } finally {
    await client.stop();
  }
}
