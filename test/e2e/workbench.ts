/** Driving the VS Code workbench in chromium with playwright-core: the few moves the test needs. */
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type FrameLocator, type Locator, type Page } from 'playwright-core';

export interface Workbench {
  browser: Browser;
  page: Page;
  shot(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function openWorkbench(url: string, folder: string, shotsDir: string): Promise<Workbench> {
  mkdirSync(shotsDir, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  // A busy machine (CI on 2 cores, other jobs) can take well over the default 30 s to load the workbench.
  await page.goto(`${url}/?folder=${encodeURIComponent(folder)}`, { timeout: 180_000, waitUntil: 'domcontentloaded' });
  await page.locator('.monaco-workbench').waitFor({ timeout: 180_000 });
  let n = 0;
  return {
    browser,
    page,
    async shot(name) {
      const file = join(shotsDir, `${String(++n).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path: file });
      return file;
    },
    close: () => browser.close(),
  };
}

/** The Explorer row of a file or folder, by its visible name. */
export function explorerRow(page: Page, name: string): Locator {
  return page.locator(`.explorer-folders-view .monaco-list-row[aria-label="${name}"]`).first();
}

export async function expandFolder(page: Page, name: string, child: string): Promise<void> {
  const row = explorerRow(page, name);
  // The Explorer fills in after the workbench appears; on a busy machine that takes a while.
  await row.waitFor({ timeout: 120_000 });
  for (let attempt = 0; attempt < 5; attempt++) {
    if ((await row.getAttribute('aria-expanded')) !== 'true') await row.click();
    try {
      await explorerRow(page, child).waitFor({ timeout: 5000 });
      return;
    } catch {
      // The tree was still loading: collapse and try again.
      if ((await row.getAttribute('aria-expanded')) === 'true') await row.click();
    }
  }
  throw new Error(`${child} never appeared under ${name} in the Explorer`);
}

/**
 * Right-click a file in the Explorer and pick a context-menu item. Retries while the item is
 * missing: the menu lists an extension's items only once the extension host has read it.
 */
export async function explorerContextAction(page: Page, file: string, item: string, timeoutMs = 120_000): Promise<void> {
  const row = explorerRow(page, file);
  await row.waitFor({ timeout: 60_000 });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await row.click({ button: 'right' });
    const action = page.locator('.context-view .action-label', { hasText: item }).first();
    try {
      await action.waitFor({ timeout: 3000 });
    } catch (e) {
      await page.keyboard.press('Escape');
      if (Date.now() > deadline) throw e;
      await page.waitForTimeout(1000);
      continue;
    }
    await pickMenuItem(page, action);
    return;
  }
}

/** Picks an item of an open menu; a menu may ignore a click that comes right after it opened, so Enter follows if needed. */
export async function pickMenuItem(page: Page, item: Locator): Promise<void> {
  await item.hover();
  await page.waitForTimeout(200);
  await item.click();
  try {
    await item.waitFor({ state: 'hidden', timeout: 1500 });
  } catch {
    await page.keyboard.press('Enter');
    await item.waitFor({ state: 'hidden', timeout: 5000 });
  }
}

/** Runs a command from the palette; retries while the extension's commands are not listed yet. */
export async function runCommand(page: Page, title: string): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget .quick-input-box input');
    const row = page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: title }).first();
    try {
      // F1 pressed while a webview's frame holds the focus can open the palette and lose it again: retry.
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await input.fill(`>${title}`, { timeout: 5000 });
      await row.waitFor({ timeout: 3000 });
      await row.click();
      return;
    } catch {
      await page.keyboard.press('Escape');
      // Focus back on the workbench (out of a webview frame) before the next F1.
      await page.locator('.part.sidebar .composite.title').first().click({ timeout: 2000 }).catch(() => undefined);
      await page.waitForTimeout(1000);
    }
  }
  throw new Error(`command '${title}' never appeared in the palette`);
}

export async function openProblems(page: Page): Promise<Locator> {
  const panel = page.locator('.markers-panel');
  if (!(await panel.isVisible())) await page.keyboard.press('Control+Shift+M');
  await panel.waitFor({ timeout: 30_000 });
  return panel;
}

/** The visible report view's content frame (a webview inside a webview iframe; the inner one keeps its 'pending' id at times). */
export function reportFrame(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready >> visible=true').frameLocator('#active-frame, #pending-frame');
}

/** Hides the bottom panel (Problems) and the notification toasts so the editor area shows whole in screenshots. */
export async function hidePanel(page: Page): Promise<void> {
  if (await page.locator('.part.panel').isVisible()) await page.keyboard.press('Control+J');
  await page.locator('.part.panel').waitFor({ state: 'hidden', timeout: 20_000 });
  if (await page.locator('.notifications-toasts .notification-toast').count()) await runCommand(page, 'Notifications: Clear All Notifications');
}

export interface ProblemRow {
  /** The file the marker belongs to (its group row's label). */
  file: string;
  text: string;
  severity: 'error' | 'warning' | 'info' | 'unknown';
}

/**
 * The marker rows of the Problems panel with their file and severity (read from the row's icon).
 * The list only renders the rows in view: `filter` (the panel's own filter box) narrows it first.
 */
export async function problemRows(page: Page, filter = ''): Promise<ProblemRow[]> {
  const panel = await openProblems(page);
  const box = page.locator('.part.panel input[placeholder^="Filter"]').first();
  await box.fill(filter);
  await page.waitForTimeout(700);
  const rows = await readProblemRows(panel);
  if (filter) await box.fill('');
  return rows;
}

function readProblemRows(panel: Locator): Promise<ProblemRow[]> {
  return panel.evaluate((root) => {
    const out: { file: string; text: string; severity: 'error' | 'warning' | 'info' | 'unknown' }[] = [];
    let file = '';
    for (const row of Array.from(root.querySelectorAll('.monaco-list-row'))) {
      const level = row.getAttribute('aria-level');
      const text = (row as HTMLElement).innerText.replace(/\s+/g, ' ').trim();
      if (level === '1') {
        file = row.querySelector('.label-name')?.textContent?.trim() ?? text;
        continue;
      }
      // A marker row's icon is classed 'marker-icon error|warning|info'; related-information rows have none.
      const icon = row.querySelector('.marker-icon')?.className;
      if (icon === undefined) continue;
      const severity = /\berror\b/.test(icon) ? 'error' : /\bwarning\b/.test(icon) ? 'warning' : /\binfo\b/.test(icon) ? 'info' : 'unknown';
      out.push({ file, text, severity });
    }
    return out;
  });
}

/** Answers VS Code's own file dialog (the "simple" one code-server shows) with an absolute path. */
export async function answerFileDialog(page: Page, path: string): Promise<void> {
  const widget = page.locator('.quick-input-widget');
  const input = widget.locator('.quick-input-box input');
  await input.waitFor({ timeout: 20_000 });
  await input.fill(path);
  await page.waitForTimeout(500);
  await page.keyboard.press('Enter');
  try {
    await widget.waitFor({ state: 'hidden', timeout: 5000 });
  } catch {
    // The dialog first completed the path; the second Enter accepts it.
    await page.keyboard.press('Enter');
    await widget.waitFor({ state: 'hidden', timeout: 10_000 });
  }
}

/** A toast's button, by the toast's text and the button's label. */
export function toastButton(page: Page, text: string | RegExp, button: string): Locator {
  return page.locator('.notifications-toasts .notification-toast', { hasText: text }).locator('.monaco-button', { hasText: button }).first();
}

/** The log files behind an extension's Output channel, newest last (VS Code writes each channel to the profile's logs folder). */
export function outputChannelLogs(userData: string, channel: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(`${channel}.log`)) found.push(p);
    }
  };
  walk(join(userData, 'logs'));
  return found.sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
}
