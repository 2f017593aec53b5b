/**
 * The extension in a real VS Code (code-server 4.100.3 + Debian chromium + playwright-core), with
 * the default scan settings, as a new user meets it: a scan without data and the data picker it
 * offers, a clean model that is not marked, right-click → findings on the bundled BadNets model,
 * the report view whose charts draw the report's thresholds, the Output channel's log of every
 * stage, Ctrl+. on a finding in the model outline applying a fix and the compare view after it,
 * themes, and cancelling a scan. Screenshots of every step: test-results/e2e/*.png; timings:
 * test-results/e2e/timings.json. Run with `npm run test:e2e`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ScanReport } from '../../engine/report/types';
import { installCodeServer, installExtension, makeProfile, startCodeServer, type CodeServer, type Profile } from './code-server';
import {
  answerFileDialog,
  expandFolder,
  explorerContextAction,
  explorerRow,
  hidePanel,
  openProblems,
  openWorkbench,
  outputChannelLogs,
  problemRows,
  reportFrame,
  runCommand,
  toastButton,
  type Workbench,
} from './workbench';

const root = join(__dirname, '..', '..');
const shots = join(root, 'test-results', 'e2e');
const vsix = process.env.BACKDOOR_LENS_VSIX ?? join(root, 'backdoor-lens-linux-x64.vsix');
/** A default scan of the bundled model takes about 30 s on 2 idle cores; a busy CI machine may take several times that. */
const SCAN_MS = 600_000;

/** Waits until `condition` gives something truthy, and returns it. */
async function until<T>(what: string, condition: () => T, timeoutMs: number): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = condition();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('Backdoor Lens in VS Code, default scan settings', { timeout: 3_600_000 }, () => {
  let base: string;
  let ws: string;
  let profile: Profile;
  let server: CodeServer | undefined;
  let wb: Workbench | undefined;
  let report: ScanReport | undefined;
  const timings: Record<string, number> = {};

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
    for (const d of ['badnets', 'clean', 'data', 'broken']) mkdirSync(join(ws, d), { recursive: true });
    copyFileSync(join(root, 'fixtures/fmnist/badnets/model.onnx'), join(ws, 'badnets/model.onnx'));
    copyFileSync(join(root, 'fixtures/fmnist/clean/model.onnx'), join(ws, 'clean/clean-model.onnx'));
    copyFileSync(join(root, 'fixtures/fmnist/data/clean.npz'), join(ws, 'data/clean.npz'));
    writeFileSync(join(ws, 'broken/truncated.onnx'), readFileSync(join(root, 'fixtures/fmnist/badnets/model.onnx')).subarray(0, 3000));
    // No backdoor-lens.json and no backdoorLens.* settings: the defaults, and no data until the user picks it.
    profile = makeProfile(join(base, 'profile'));
    installExtension(bin, profile, vsix);
    server = await startCodeServer(bin, profile);
    wb = await openWorkbench(server.url, ws, shots);
  });

  after(async () => {
    if (Object.keys(timings).length) writeFileSync(join(shots, 'timings.json'), `${JSON.stringify(timings, null, 2)}\n`);
    await wb?.close().catch(() => undefined);
    await server?.stop();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  test('a scan without data shows the data-free result and offers Choose Clean Data…; the picker sets the data and rescans', { timeout: SCAN_MS }, async () => {
    const page = wb!.page;
    await expandFolder(page, 'clean', 'clean-model.onnx');
    await wb!.shot('workspace');
    await explorerContextAction(page, 'clean-model.onnx', 'Scan for Backdoor');
    const choose = toastButton(page, /clean-model\.onnx: .*The report shows the data-free analyses/, 'Choose Clean Data…');
    await choose.waitFor({ timeout: 120_000 });
    await wb!.shot('no-data-offers-picker');
    await choose.click();
    await page.locator('.quick-input-widget .quick-input-box input').waitFor({ timeout: 20_000 });
    await wb!.shot('data-picker');
    const t0 = Date.now();
    await answerFileDialog(page, join(ws, 'data', 'clean.npz'));
    // Written to the workspace folder's settings, relative to it.
    const settingsFile = join(ws, '.vscode', 'settings.json');
    await until('the data setting is written', () => existsSync(settingsFile) && /backdoorLens\.data/.test(readFileSync(settingsFile, 'utf8')), 30_000);
    assert.equal(JSON.parse(readFileSync(settingsFile, 'utf8'))['backdoorLens.data'], join('data', 'clean.npz'));
    // The picker rescans with the data: a detector now decides.
    await page.locator('.notifications-toasts .notification-toast', { hasText: /clean-model\.onnx: No backdoor found — pairs:/ }).waitFor({ timeout: SCAN_MS - 60_000 });
    timings['clean model: data picked → verdict (s)'] = (Date.now() - t0) / 1000;
    await wb!.shot('clean-model-verdict');
  });

  test("a clean model's Explorer decoration is not a warning, and its Problems entries are information", async () => {
    const page = wb!.page;
    const rows = (await problemRows(page, 'clean-model')).filter((r) => r.file === 'clean-model.onnx' || r.file === 'clean-model.onnx.outline');
    assert.ok(rows.length > 0, 'the clean scan has entries (its verdict and the neuron flags as information)');
    assert.ok(rows.every((r) => r.severity === 'info'), JSON.stringify(rows));
    await hidePanel(page);
    const label = explorerRow(page, 'clean-model.onnx').locator('.monaco-icon-label');
    const [cls, colour, plain] = [
      await label.getAttribute('class'),
      await label.locator('.label-name').evaluate((e) => getComputedStyle(e).color),
      await explorerRow(page, 'data').locator('.label-name').evaluate((e) => getComputedStyle(e).color),
    ];
    assert.doesNotMatch(cls ?? '', /monaco-decoration-itemColor/, `clean-model.onnx carries a decoration colour: ${cls}`);
    assert.equal(colour, plain, 'drawn like an unmarked row');
    await wb!.shot('clean-model-not-marked');
  });

  test('right-click → findings on the bundled BadNets model: the Problems panel names the target and the evidence; the file is red', { timeout: SCAN_MS }, async () => {
    const page = wb!.page;
    await expandFolder(page, 'badnets', 'model.onnx');
    const t0 = Date.now();
    await explorerContextAction(page, 'model.onnx', 'Scan for Backdoor');
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'scanning model.onnx' });
    await toast.waitFor({ timeout: 20_000 });
    // Real stage names and an estimate of the time left, once the scan is inside an analysis.
    await toast.filter({ hasText: /\d+% — .+ — (about \d+ (s|min)|a few seconds) left/ }).waitFor({ timeout: 120_000 }).catch(() => undefined);
    await wb!.shot('scan-progress');
    // Read through the panel's filter: the list renders only the rows in view, and earlier scans left rows above.
    await openProblems(page);
    const deadline = Date.now() + SCAN_MS - 30_000;
    while (!(await problemRows(page, 'Backdoor: target class 0')).some((r) => r.file === 'model.onnx' && /pairs:/.test(r.text))) {
      if (Date.now() > deadline) throw new Error('no "Backdoor: target class 0 … pairs:" problem on model.onnx');
      await page.waitForTimeout(1000);
    }
    timings['right-click → findings, bundled BadNets model (s)'] = (Date.now() - t0) / 1000;
    await wb!.shot('problems');
    const rows = await problemRows(page);
    const summary = rows.find((r) => r.file === 'model.onnx' && /BL003/.test(r.text));
    assert.ok(summary && summary.severity === 'error', JSON.stringify(rows));
    for (const r of rows) assert.ok(r.text.split(' Backdoor Lens')[0].length <= 120, `one line of ≤ 120 characters: ${r.text}`);
    await page.waitForFunction(() => document.querySelector('.explorer-folders-view .monaco-list-row[aria-label="model.onnx"] .monaco-icon-label')?.className.includes('monaco-decoration-itemColor'), undefined, { timeout: 10_000 });
    const marked = await explorerRow(page, 'model.onnx').locator('.label-name').evaluate((e) => getComputedStyle(e).color);
    const [r, g, b] = marked.match(/\d+/g)!.map(Number);
    assert.ok(r > 150 && r > g + 60 && r > b + 60, `model.onnx is drawn in ${marked}`);
    await wb!.shot('explorer-marked');
  });

  test('a finding code opens its page rendered, not as Markdown source', async () => {
    const page = wb!.page;
    const problems = await openProblems(page);
    const filter = page.locator('.part.panel input[placeholder^="Filter"]').first();
    await filter.fill('Backdoor: target class 0');
    await problems.locator('.monaco-list-row', { hasText: 'BL003' }).first().locator('a, .code-link', { hasText: 'BL003' }).first().click();
    await filter.fill('');
    await page.locator('.tabs-container .tab', { hasText: 'Preview BL003.md' }).waitFor({ timeout: 20_000 });
    await reportFrame(page).locator('h1', { hasText: 'BL003' }).waitFor({ timeout: 60_000 });
    await hidePanel(page);
    await wb!.shot('finding-doc-rendered');
    await page.keyboard.press('Control+W');
  });

  test('a file that cannot be scanned gets its own mark, not the backdoor red, and the error names the action', async () => {
    const page = wb!.page;
    await expandFolder(page, 'broken', 'truncated.onnx');
    await explorerContextAction(page, 'truncated.onnx', 'Scan for Backdoor');
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: /truncated\.onnx: Could not be scanned: .*truncated or corrupt/ });
    await toast.waitFor({ timeout: 60_000 });
    await toast.locator('.monaco-button', { hasText: 'Show Log' }).waitFor();
    await page.waitForFunction(() => document.querySelector('.explorer-folders-view .monaco-list-row[aria-label="truncated.onnx"] .monaco-icon-label')?.className.includes('monaco-decoration-itemColor'), undefined, { timeout: 10_000 });
    const colour = (name: string) => explorerRow(page, name).locator('.label-name').evaluate((e) => getComputedStyle(e).color);
    const [mark, red, plain] = [await colour('truncated.onnx'), await colour('model.onnx'), await colour('data')];
    assert.ok(mark !== red && mark !== plain, `truncated.onnx drawn in ${mark}; backdoored ${red}, unmarked ${plain}`);
    const rows = (await problemRows(page, 'truncated')).filter((r) => r.file === 'truncated.onnx');
    assert.deepEqual(rows.map((r) => r.severity), ['info'], JSON.stringify(rows));
    await wb!.shot('unscannable-marked');
    await hidePanel(page);
  });

  test("the report view: the anomaly chart's threshold is the report's, with legends, the matrix and the trigger viewer", async () => {
    const page = wb!.page;
    await hidePanel(page);
    await explorerRow(page, 'model.onnx').dblclick();
    const frame = reportFrame(page);
    await frame.locator('#verdict', { hasText: 'Backdoor: target 0' }).waitFor({ timeout: 30_000 });
    report = JSON.parse((await frame.locator('#report-json').textContent()) ?? '{}') as ScanReport;
    assert.equal(report.verdict, 'backdoored');
    const canvases = frame.locator('#anomaly canvas[data-method]');
    await canvases.first().waitFor({ timeout: 10_000 });
    await frame.locator('#anomaly canvas[data-threshold]').first().waitFor({ timeout: 10_000 });
    const drawn = await canvases.evaluateAll((cs) => cs.map((c) => ({ method: c.getAttribute('data-method'), threshold: c.getAttribute('data-threshold') })));
    assert.ok(drawn.length >= 1, 'one anomaly chart per detector test');
    for (const d of drawn) {
      const evidence = report.evidence.find((e) => e.method === d.method);
      assert.ok(evidence, `${d.method} is a test of the report`);
      const threshold: number = evidence.threshold;
      assert.equal(Number(d.threshold), threshold, `${d.method}: chart threshold ${d.threshold}, report ${threshold}`);
    }
    // methods[].threshold is the smallest of the detector's screen thresholds.
    const pairsEvidence = report.evidence.filter((e) => e.method.startsWith('pairs:'));
    assert.equal(report.methods.find((m) => m.method === 'pairs')?.threshold, Math.min(...pairsEvidence.map((e) => e.threshold)), 'the detector threshold of methods[]');
    const first = report.evidence.find((e) => e.method === drawn[0].method)!;
    assert.equal(Number(await frame.locator('#anomaly .legend').first().getAttribute('data-threshold')), first.threshold, 'the legend states it');
    await frame.locator('#anomaly').scrollIntoViewIfNeeded();
    await wb!.shot('report-anomaly');
    // The matrix explains every flagged pair: which trigger moves it, and how much of the class.
    const flagged = await frame.locator('#pairs td.flagged').evaluateAll((cells) => cells.map((c) => ({ pair: c.getAttribute('data-pair'), title: c.getAttribute('title') ?? '' })));
    assert.ok(flagged.length > 0, 'flagged class pairs in the matrix');
    for (const f of flagged) assert.match(f.title, /Flagged/, `${f.pair}: ${f.title}`);
    await frame.locator('#pairs').scrollIntoViewIfNeeded();
    await wb!.shot('report-pairs');
    // One trigger row per reversed trigger that was flagged (one per target, or per pair of a shift), each with its drawings.
    const rows = frame.locator('#triggers .trigger-row');
    const count = await rows.count();
    assert.ok(count >= 1 && count <= Math.min(flagged.length, 24), `${count} trigger rows for ${flagged.length} flagged pairs`);
    assert.ok((await frame.locator('#triggers .trigger-row').first().locator('canvas.pixels').count()) >= 4, 'clean, mask, pattern, stamped, difference');
    await frame.locator('#triggers').scrollIntoViewIfNeeded();
    await wb!.shot('report-triggers');
    await frame.locator('#neurons').scrollIntoViewIfNeeded().catch(() => undefined);
    await wb!.shot('report-neurons');
  });

  test('the Output channel logs every scan: settings, a line per stage with its time, the outcome', async () => {
    const page = wb!.page;
    await runCommand(page, 'Backdoor Lens: Show Log');
    // The panel shows the channel's last lines (the editor renders only what is in view, spaces as
    // no-break spaces, hence \s); the file holds them all.
    await page
      .locator('.part.panel .monaco-editor .view-lines', { hasText: /(scan|fix)\s\S+:\s(started|done\sin|failed|cancelled)/ })
      .first()
      .waitFor({ timeout: 20_000 })
      .catch(async (e) => {
        await wb!.shot('output-log-not-shown');
        throw e;
      });
    await wb!.shot('output-log');
    const logs = outputChannelLogs(profile.userData, 'Backdoor Lens');
    assert.ok(logs.length > 0, 'the Output channel is written to the profile logs');
    const lines = readFileSync(logs.at(-1)!, 'utf8').split('\n');
    // The last full scan of model.onnx (the one the report view shows).
    const start = lines.findLastIndex((l) => /scan model\.onnx: started — data .*clean\.npz/.test(l));
    const end = lines.findIndex((l, i) => i > start && /scan model\.onnx: done in/.test(l));
    assert.ok(start >= 0 && end > start, lines.join('\n'));
    const scan = lines.slice(start, end + 1);
    const stages = ['load-model', 'load-data', ...report!.methods.filter((m) => m.status === 'ran').map((m) => m.method)];
    for (const s of stages) assert.ok(scan.some((l) => new RegExp(`\\+\\d+\\.\\d s \\[${s}\\] `).test(l)), `a line for stage ${s}:\n${scan.join('\n')}`);
    assert.match(scan.at(-1)!, /done in \d+\.\d s — Backdoor: target class 0/);
    await hidePanel(page);
  });

  test('Ctrl+. on a finding in the model outline offers the fixes that can help, with effect and cost, and applies one', { timeout: 2 * SCAN_MS }, async () => {
    const page = wb!.page;
    await runCommand(page, 'Backdoor Lens: Open Model Outline');
    const verdictLine = page.locator('.monaco-editor .view-line', { hasText: 'verdict: BACKDOORED' }).first();
    await verdictLine.waitFor({ timeout: 20_000 });
    await page.locator('.monaco-editor .squiggly-error').first().waitFor({ timeout: 20_000 });
    await verdictLine.click();
    await page.keyboard.press('End');
    await page.keyboard.press('Control+Period');
    const items = page.locator('.action-widget .monaco-list-row');
    await items.first().waitFor({ timeout: 15_000 });
    await page.waitForTimeout(300);
    await wb!.shot('quick-fix-menu');
    // The menu's rows: a "Quick Fix" header, then the actions.
    const titles = (await items.allInnerTexts()).map((t) => t.trim()).filter((t) => t && t !== 'Quick Fix');
    // First: Repair (auto), which tries each fix cheapest first and keeps the best; then BNA for the detected target.
    assert.match(titles[0], /^Repair \(each fix, keep the best\) for target 0 — est\. ~\d+ (s|min)/, titles.join('\n'));
    assert.ok(titles.some((t) => /^BNA correction for target 0 — est\. ~\d+ (s|min)/.test(t)), titles.join('\n'));
    const flaggedBy = new Set(report!.neurons.filter((n) => n.flagged).map((n) => n.method.toUpperCase()));
    for (const t of titles.slice(1).filter((t) => !/^(BNA correction|Unlearn the trigger|Unlearn adversarial perturbations)/.test(t))) {
      const m = /^Prune with ([A-Z]+) \(\d+ flagged channels?/.exec(t);
      assert.ok(m && flaggedBy.has(m[1]), `offered although it cannot help: ${t}`);
    }
    const t0 = Date.now();
    const before = new Set(readdirSync(join(ws, 'badnets')));
    // The first action is focused (the menu blocks pointer events over itself while it is open): Enter applies it.
    await page.locator('.action-widget .monaco-list-row.action.focused', { hasText: titles[0] }).waitFor({ timeout: 5000 });
    await page.keyboard.press('Enter');
    // The output is named for what the fix measured: purified / corrected (removed), <method>-reduced, <method>-failed.
    const named = /^model\.(purified|corrected|[a-z]+-reduced|[a-z]+-failed)(-\d+)?\.onnx$/;
    const written = await until('the repaired model is written', () => readdirSync(join(ws, 'badnets')).find((f) => !before.has(f) && named.test(f)), 2 * SCAN_MS);
    timings['Repair from Ctrl+. → file written (s)'] = (Date.now() - t0) / 1000;
    await explorerRow(page, written).waitFor({ timeout: 60_000 });
    // A removal is an information toast, a partial or failed repair a warning; both carry the numbers.
    const removed = /^model\.(purified|corrected)/.test(written);
    const toast = page.locator(`.notifications-toasts .notification-toast:has(.codicon-${removed ? 'info' : 'warning'})`, { hasText: /Backdoor Lens: .*(removed|reduced|failed) — .*ASR/ });
    await toast.first().waitFor({ timeout: 60_000 });
    const frame = reportFrame(page);
    await frame.locator('#fix').waitFor({ timeout: 60_000 });
    // The rescan agrees with the outcome: a removal is confirmed by a scan that finds no backdoor.
    await frame.locator('#verdict', { hasText: removed ? /No backdoor found|Inconclusive/ : /No backdoor found|Inconclusive|Backdoor/ }).waitFor({ timeout: SCAN_MS });
    await frame.locator('#fix-outcome', { hasText: removed ? 'removed' : /reduced|failed/ }).waitFor({ timeout: 10_000 });
    // The compare view: original vs fixed, clean accuracy and attack success.
    const compare = await frame.locator('#fix table.compare').innerText();
    const asr = /attack success[^\n]*\t([\d.]+)%\t([\d.]+)%/.exec(compare);
    assert.ok(asr && Number(asr[2]) < Number(asr[1]), `the attack success rate must drop: ${compare}`);
    // Per-class clean accuracy on the same held-out images, with the class that lost most named.
    await frame.locator('#fix-per-class canvas').waitFor({ timeout: 10_000 });
    assert.match(await frame.locator('#fix-per-class-caption').innerText(), /^(Largest drop: class \d+, [\d.]+% → [\d.]+% \(\d+ held-out images\)\.|No class lost accuracy\.)$/);
    await hidePanel(page);
    await frame.locator('#fix').scrollIntoViewIfNeeded();
    await wb!.shot('compare-after-fix');
  });

  test('the report view follows the theme (dark, high contrast)', async () => {
    const page = wb!.page;
    await page.keyboard.press('Escape');
    await explorerRow(page, 'model.onnx').dblclick();
    const frame = reportFrame(page);
    for (const [theme, bodyClass] of [['Dark Modern', 'vscode-dark'], ['Dark High Contrast', 'vscode-high-contrast']] as const) {
      await runCommand(page, 'Preferences: Color Theme');
      const input = page.locator('.quick-input-widget .quick-input-box input');
      await input.fill(theme);
      await page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: theme }).first().waitFor();
      await page.keyboard.press('Enter');
      await frame.locator(`body.${bodyClass}`).waitFor({ timeout: 20_000 });
      await frame.locator('#anomaly canvas').first().waitFor();
      const background = await frame.locator('body').evaluate((b) => getComputedStyle(b).backgroundColor);
      const [r, g, b] = background.match(/\d+/g)!.map(Number);
      assert.ok(r + g + b < 120, `${theme}: dark background, got ${background}`);
      await frame.locator('#pairs').scrollIntoViewIfNeeded();
      await wb!.shot(`report-${bodyClass}`);
    }
  });

  test('Scan for Backdoor from the editor title; Cancel in the progress notification stops it and keeps the results', { timeout: SCAN_MS }, async () => {
    const page = wb!.page;
    const frame = reportFrame(page);
    await frame.locator('#verdict', { hasText: 'Backdoor: target 0' }).waitFor({ timeout: 10_000 });
    await page.locator('.editor-actions .action-label[aria-label^="Scan for Backdoor"]').first().click();
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'scanning model.onnx' }).first();
    await toast.waitFor({ timeout: 20_000 });
    // Let it get into an analysis, so that the cancel lands mid-scan.
    await frame.locator('#stage', { hasText: /[Tt]rigger reversal|\((CLP|BNP)\)/ }).waitFor({ timeout: 120_000 });
    await wb!.shot('scan-running');
    await toast.locator('.monaco-button', { hasText: 'Cancel' }).click();
    await page.locator('.notifications-toasts .notification-toast', { hasText: /scanning model\.onnx: cancelled/ }).waitFor({ timeout: 30_000 });
    await frame.locator('#verdict', { hasText: 'Backdoor: target 0' }).waitFor({ timeout: 10_000 });
    await wb!.shot('scan-cancelled');
  });
});
