/**
 * The extension in a real VS Code (code-server 4.100.3 + Debian chromium + playwright-core):
 * scan the BadNets checkpoint from the Explorer, read the Problems panel and the Explorer mark,
 * apply a quick fix from the lightbulb, check the purified model's rescan and the report view.
 * Screenshots of every step: test-results/e2e/*.png. Run with `npm run test:e2e`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { installCodeServer, installExtension, makeProfile, startCodeServer, type CodeServer } from './code-server';
import { expandFolder, explorerContextAction, explorerRow, openProblems, openWorkbench, reportFrame, type Workbench } from './workbench';

const root = join(__dirname, '..', '..');
const shots = join(root, 'test-results', 'e2e');
const vsix = process.env.BACKDOOR_LENS_VSIX ?? join(root, 'backdoor-lens-linux-x64.vsix');

describe('Backdoor Lens in VS Code', { timeout: 300_000 }, () => {
  let base: string;
  let ws: string;
  let server: CodeServer | undefined;
  let wb: Workbench | undefined;

  before(async () => {
    rmSync(shots, { recursive: true, force: true });
    mkdirSync(shots, { recursive: true });
    const bin = installCodeServer(root);
    if (!process.env.BACKDOOR_LENS_VSIX) {
      const r = spawnSync('npm', ['run', '--silent', 'package'], { cwd: root, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`npm run package failed:\n${r.stdout}\n${r.stderr}`);
    }
    base = mkdtempSync(join(tmpdir(), 'bl-e2e-'));
    ws = join(base, 'workspace');
    for (const d of ['badnets', 'data', '.vscode']) mkdirSync(join(ws, d), { recursive: true });
    copyFileSync(join(root, 'fixtures/fmnist/badnets/model.onnx'), join(ws, 'badnets/model.onnx'));
    copyFileSync(join(root, 'fixtures/fmnist/data/clean.npz'), join(ws, 'data/clean.npz'));
    copyFileSync(join(root, 'fixtures/fmnist/data/triggered.npz'), join(ws, 'data/triggered.npz'));
    writeFileSync(join(ws, '.vscode/settings.json'), JSON.stringify({ 'backdoorLens.data': 'data/clean.npz', 'backdoorLens.triggeredData': 'data/triggered.npz' }, null, 2));
    const profile = makeProfile(join(base, 'profile'));
    installExtension(bin, profile, vsix);
    server = await startCodeServer(bin, profile);
    wb = await openWorkbench(server.url, ws, shots);
  });

  after(async () => {
    await wb?.close().catch(() => undefined);
    await server?.stop();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  test('Explorer → Scan for Backdoor: the Problems panel names the target class and the file is marked', async () => {
    const page = wb!.page;
    await expandFolder(page, 'badnets');
    await wb!.shot('workspace');
    await explorerContextAction(page, 'model.onnx', 'Scan for Backdoor');
    await page.locator('.notifications-toasts', { hasText: 'scanning model.onnx' }).waitFor({ timeout: 30_000 });
    await wb!.shot('scan-progress');
    const problems = await openProblems(page);
    await problems.locator('.monaco-list-row', { hasText: /Backdoor detected.*target class 0/ }).first().waitFor({ timeout: 180_000 });
    await wb!.shot('problems');
    const rows = await problems.locator('.monaco-list-row').allInnerTexts();
    assert.ok(rows.some((r) => /target class 0/.test(r) && /BL003/.test(r)), rows.join('\n'));
    // Explorer decoration: the file's label takes the error colour and a problem count.
    const label = explorerRow(page, 'model.onnx').locator('.monaco-icon-label');
    await page.waitForFunction((el) => !!el && /errorForeground/.test(el.className), await label.elementHandle(), { timeout: 10_000 });
    await wb!.shot('explorer-marked');
  });

  test('the lightbulb on the backdoor finding applies a fix; the purified model appears and rescans clean', async () => {
    const page = wb!.page;
    const problems = await openProblems(page);
    // The per-finding diagnostics sit on the model outline; opening one puts the cursor on its line.
    const finding = problems.locator('.monaco-list-row', { hasText: /BL00[12]/ }).first();
    await finding.waitFor({ timeout: 10_000 });
    await finding.click();
    await page.locator('.monaco-editor .view-lines', { hasText: 'verdict: BACKDOORED' }).first().waitFor({ timeout: 20_000 });
    await page.locator('.monaco-editor .codelens-decoration', { hasText: /Apply BNA correction|neurons? flagged/ }).first().waitFor({ timeout: 20_000 });
    await wb!.shot('outline');
    const bulb = page.locator('.lightBulbWidget .codicon').first();
    await bulb.waitFor({ state: 'visible', timeout: 20_000 });
    await bulb.click();
    const menu = page.locator('.action-widget');
    await menu.waitFor({ timeout: 10_000 });
    await wb!.shot('lightbulb');
    const item = menu.locator('.monaco-list-row:not(.disabled)', { hasText: /Apply BNA correction|Prune with BNP/ }).first();
    const chosen = (await item.innerText()).trim();
    await item.click();
    await explorerRow(page, 'model.purified.onnx').waitFor({ timeout: 180_000 });
    assert.ok(existsSync(join(ws, 'badnets', 'model.purified.onnx')));
    const frame = reportFrame(page);
    await frame.locator('#fix').waitFor({ timeout: 60_000 });
    await frame.locator('#verdict', { hasText: /No backdoor found|Inconclusive/ }).waitFor({ timeout: 180_000 });
    await wb!.shot('purified-report');
    const problems2 = await openProblems(page);
    await page.waitForTimeout(500);
    const rows = await problems2.locator('.monaco-list-row').allInnerTexts();
    const purifiedErrors = rows.filter((r) => /model\.purified\.onnx/.test(r) && /Backdoor detected/.test(r));
    assert.deepEqual(purifiedErrors, [], `after ${chosen}: ${rows.join('\n')}`);
    await wb!.shot('problems-after-fix');
  });

  test('the report view shows the charts', async () => {
    const page = wb!.page;
    await explorerRow(page, 'model.onnx').dblclick();
    const frame = reportFrame(page);
    await frame.locator('#verdict', { hasText: 'Backdoor: target 0' }).waitFor({ timeout: 30_000 });
    await frame.locator('#anomaly canvas').waitFor({ timeout: 10_000 });
    await frame.locator('#pairs table.matrix').waitFor({ timeout: 10_000 });
    const flaggedCells = await frame.locator('#pairs td.flagged').count();
    assert.ok(flaggedCells > 0, 'flagged class pairs in the matrix');
    const charts = await frame.locator('canvas').count();
    assert.ok(charts >= 2, `${charts} charts`);
    await wb!.shot('report');
    await frame.locator('#neurons').scrollIntoViewIfNeeded().catch(() => undefined);
    await wb!.shot('report-neurons');
  });
});
