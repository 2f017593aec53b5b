/**
 * code-server 4.100.3 (VS Code 1.100 for the browser) for the end-to-end test: installed by
 * tools/e2e/install-code-server.sh into .cache/e2e, run with a fresh home, user data and
 * extensions folder, in its own process group so that everything it started can be stopped.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface CodeServer {
  url: string;
  stop(): Promise<void>;
  log(): string;
}

export function installCodeServer(root: string): string {
  const r = spawnSync('bash', [join(root, 'tools/e2e/install-code-server.sh')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('installing code-server failed (tools/e2e/install-code-server.sh)');
  return join(root, '.cache/e2e/code-server/node_modules/.bin/code-server');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Profile {
  home: string;
  userData: string;
  extensions: string;
}

export function makeProfile(base: string, settings: Record<string, unknown> = {}): Profile {
  const p = { home: join(base, 'home'), userData: join(base, 'user-data'), extensions: join(base, 'extensions') };
  for (const d of Object.values(p)) mkdirSync(d, { recursive: true });
  mkdirSync(join(p.userData, 'User'), { recursive: true });
  writeFileSync(
    join(p.userData, 'User', 'settings.json'),
    JSON.stringify(
      {
        'telemetry.telemetryLevel': 'off',
        'update.mode': 'none',
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'security.workspace.trust.enabled': false,
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'workbench.enableExperiments': false,
        'chat.commandCenter.enabled': false,
        'window.commandCenter': false,
        ...settings,
      },
      null,
      2,
    ),
  );
  return p;
}

const env = (p: Profile) => ({ ...process.env, HOME: p.home, TMPDIR: p.home, XDG_CONFIG_HOME: join(p.home, '.config'), XDG_DATA_HOME: join(p.home, '.local/share') });

export function installExtension(bin: string, p: Profile, vsix: string): void {
  const r = spawnSync(bin, ['--user-data-dir', p.userData, '--extensions-dir', p.extensions, '--install-extension', vsix, '--force'], { env: env(p), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`installing ${vsix} failed:\n${r.stdout}\n${r.stderr}`);
}

export async function startCodeServer(bin: string, p: Profile): Promise<CodeServer> {
  const port = await freePort();
  let log = '';
  const child: ChildProcess = spawn(
    bin,
    ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override', '--user-data-dir', p.userData, '--extensions-dir', p.extensions],
    { env: env(p), detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (d) => (log += d));
  child.stderr?.on('data', (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`code-server exited with ${child.exitCode}:\n${log}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`code-server did not answer /healthz within 30 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    log: () => log,
    async stop() {
      if (child.exitCode !== null || !child.pid) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }, 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
