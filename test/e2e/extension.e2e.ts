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
import { hidePanel, pickMenuItem, runCommand, expandFolder, explorerContextAction, explorerRow, openProblems, openWorkbench, reportFrame, type Workbench } from './workbench';

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
    // The project's settings file: trigger reversal and BNP on 20 images per class keep the scan short.
    writeFileSync(join(ws, 'backdoor-lens.json'), JSON.stringify({ methods: ['pairs', 'bnp'], methodOptions: { pairs: { imagesPerClass: 20, maxSteps: 60 } } }, null, 2));
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
    await expandFolder(page, 'badnets', 'model.onnx');
    await wb!.shot('workspace');
    await explorerContextAction(page, 'model.onnx', 'Scan for Backdoor');
    // The progress notification (its stage text and Cancel) while the scan runs; the server tests check its values.
    await page.locator('.notifications-toasts', { hasText: 'scanning model.onnx' }).waitFor({ timeout: 5_000 }).catch(() => undefined);
    await wb!.shot('scan-progress');
    const problems = await openProblems(page);
    await problems.locator('.monaco-list-row', { hasText: /Backdoor detected.*target class 0/ }).first().waitFor({ timeout: 180_000 });
    await wb!.shot('problems');
    const rows = await problems.locator('.monaco-list-row').allInnerTexts();
    assert.ok(rows.some((r) => /target class 0/.test(r) && /BL003/.test(r)), rows.join('\n'));
    // Explorer decoration: the file's name takes the error colour (red), unlike an unmarked row.
    const colour = (name: string) => explorerRow(page, name).locator('.label-name').evaluate((e) => getComputedStyle(e).color);
    await page.waitForFunction(() => document.querySelector('.explorer-folders-view .monaco-list-row[aria-label="model.onnx"] .monaco-icon-label')?.className.includes('monaco-decoration-itemColor'), undefined, { timeout: 10_000 });
    const [marked, plain] = [await colour('model.onnx'), await colour('data')];
    const [r, g, b] = marked.match(/\d+/g)!.map(Number);
    assert.ok(marked !== plain && r > 150 && r > g + 60 && r > b + 60, `model.onnx is drawn in ${marked}, data in ${plain}`);
    await wb!.shot('explorer-marked');
  });

  test('the lightbulb on the backdoor finding applies a fix; the purified model appears and rescans clean', async () => {
    const page = wb!.page;
    const problems = await openProblems(page);
    // The per-finding diagnostics sit on the model outline; opening one puts the cursor on its line.
    const finding = problems.locator('.monaco-list-row', { hasText: /BL00[1245]/ }).first();
    await finding.waitFor({ timeout: 10_000 });
    await finding.click();
    await page.locator('.monaco-editor .view-lines', { hasText: 'verdict: BACKDOORED' }).first().waitFor({ timeout: 20_000 });
    await page.locator('.monaco-editor .codelens-decoration', { hasText: /Apply BNA correction|neurons? flagged/ }).first().waitFor({ timeout: 20_000 });
    await wb!.shot('outline');
    // The finding's lightbulb ("Show fixes") lists the quick fixes the server offers.
    await finding.hover();
    await finding.locator('.markers-panel-action-quickfix').click();
    const item = page.locator('.context-view .action-label, .action-widget .monaco-list-row', { hasText: /Apply BNA correction|Prune with BNP/ }).first();
    await item.waitFor({ timeout: 10_000 });
    await page.waitForTimeout(300); // the menu fades in
    await wb!.shot('lightbulb');
    const chosen = (await item.innerText()).trim();
    await pickMenuItem(page, item);
    await explorerRow(page, 'model.purified.onnx').waitFor({ timeout: 180_000 });
    assert.ok(existsSync(join(ws, 'badnets', 'model.purified.onnx')));
    const frame = reportFrame(page);
    await frame.locator('#fix').waitFor({ timeout: 60_000 });
    // No backdoor finding on the purified model: clean, or inconclusive where the detector cannot follow
    // the repaired graph (BNA's inference rule adds a Where the trigger reversal has no gradient for).
    await frame.locator('#verdict', { hasText: /No backdoor found|Inconclusive/ }).waitFor({ timeout: 180_000 });
    const fixText = await frame.locator('#fix').innerText();
    const asr = /attack success rate ([\d.]+)% → ([\d.]+)%/.exec(fixText);
    assert.ok(asr && Number(asr[2]) < Number(asr[1]), `${chosen}: the attack success rate must drop: ${fixText}`);
    await hidePanel(page);
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
    await hidePanel(page);
    await frame.locator('#anomaly').scrollIntoViewIfNeeded();
    await wb!.shot('report');
    await frame.locator('#pairs').scrollIntoViewIfNeeded();
    await wb!.shot('report-pairs');
    await frame.locator('#neurons').scrollIntoViewIfNeeded().catch(() => undefined);
    await wb!.shot('report-neurons');
  });

  test('the report view follows the theme (dark, high contrast)', async () => {
    const page = wb!.page;
    const frame = reportFrame(page);
    for (const [theme, bodyClass] of [['Dark Modern', 'vscode-dark'], ['Dark High Contrast', 'vscode-high-contrast']] as const) {
      await runCommand(page, 'Preferences: Color Theme');
      const input = page.locator('.quick-input-widget .quick-input-box input');
      await input.fill(theme);
      await page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: theme }).first().waitFor();
      await page.keyboard.press('Enter');
      await frame.locator(`body.${bodyClass}`).waitFor({ timeout: 20_000 });
      await frame.locator('#anomaly canvas').waitFor();
      const background = await frame.locator('body').evaluate((b) => getComputedStyle(b).backgroundColor);
      const [r, g, b] = background.match(/\d+/g)!.map(Number);
      assert.ok(r + g + b < 120, `${theme}: dark background, got ${background}`);
      await frame.locator('#anomaly').scrollIntoViewIfNeeded();
      await wb!.shot(`report-${bodyClass}`);
    }
  });

  test('Scan for Backdoor from the editor title; Cancel in the progress notification stops it', async () => {
    const page = wb!.page;
    const frame = reportFrame(page);
    await frame.locator('#verdict', { hasText: 'Backdoor: target 0' }).waitFor({ timeout: 10_000 });
    await page.locator('.editor-actions .action-label[aria-label^="Scan for Backdoor"]').first().click();
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'scanning model.onnx' }).first();
    await toast.waitFor({ timeout: 20_000 });
    // Let it get into an analysis, so that the cancel lands mid-scan.
    await frame.locator('#stage', { hasText: /: / }).waitFor({ timeout: 30_000 });
    await wb!.shot('scan-running');
    await toast.locator('.monaco-button', { hasText: 'Cancel' }).click();
    await page.locator('.notifications-toasts .notification-toast', { hasText: /scanning model\.onnx: cancelled/ }).waitFor({ timeout: 15_000 });
    // The earlier results stay.
    await frame.locator('#verdict', { hasText: 'Backdoor: target 0' }).waitFor({ timeout: 10_000 });
    await wb!.shot('scan-cancelled');
  });
});
