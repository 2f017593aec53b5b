/**
 * Soak test of the language server: starts `backdoor-lens lsp --stdio` from the built bundle
 * (dist/cli.js), runs many short scans of the fixture checkpoints over stdio, cancels about a
 * third of them at random moments, and checks that every scan ended in a result or a clean
 * cancellation, that the server still answers, and that its resident memory came back to within
 * the allowed growth of the baseline taken after the warm-up (one scan through every path, then
 * one scan of each checkpoint in the rotation).
 *
 *   npm run build && npm run soak [-- --scans 50 --seed 1 --cancel 0.333 --max-growth 0.2 --settle-ms 30000]
 *
 * Exit code 0 when it passes, 1 when it does not.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import { LSPErrorCodes, ResponseError } from 'vscode-languageserver-protocol';
import { mulberry32 } from '../../engine/analyses/stats/random';
import { DebugMemoryRequest, OutlineRequest, ReportRequest, ScanRequest } from '../../protocol/lsp';
import { serverEnvironment } from '../../protocol/server-environment';
import { connectClient, fileUri, type TestClient } from '../server/lsp-client';

const root = join(__dirname, '..', '..');
const fixtures = join(root, 'fixtures', 'fmnist');

const { values } = parseArgs({
  options: {
    scans: { type: 'string', default: '50' },
    seed: { type: 'string', default: '1' },
    cancel: { type: 'string', default: String(1 / 3) },
    'max-growth': { type: 'string', default: '0.2' },
    // V8 gives back the young generation it grew only once the server has been idle for about 25 s.
    'settle-ms': { type: 'string', default: '30000' },
  },
});
const scans = Number(values.scans);
const seed = Number(values.seed);
const cancelRate = Number(values.cancel);
const maxGrowth = Number(values['max-growth']);
const settleMs = Number(values['settle-ms']);

/**
 * Four checkpoints, each in a folder whose backdoor-lens.json keeps its scan to seconds: trigger
 * reversal on few images per class, the neuron methods, and a state_dict built into a graph.
 */
function workspace(): { dir: string; models: string[]; warmUp: string } {
  const dir = mkdtempSync(join(tmpdir(), 'bl-soak-'));
  mkdirSync(join(dir, 'data'));
  copyFileSync(join(fixtures, 'data', 'clean.npz'), join(dir, 'data', 'clean.npz'));
  const quickPairs = { imagesPerClass: 8, maxSteps: 30 };
  const cases: [string, string, object][] = [
    ['badnets', join(fixtures, 'badnets', 'model.onnx'), { methods: ['pairs', 'bnp'], methodOptions: { pairs: quickPairs } }],
    ['clean', join(fixtures, 'clean', 'model.onnx'), { methods: ['clp', 'pairs'], methodOptions: { pairs: quickPairs } }],
    ['all2all', join(fixtures, 'all2all', 'model.onnx'), { methods: ['pairs'], methodOptions: { pairs: quickPairs } }],
    ['statedict', join(fixtures, 'badnets', 'model.pt'), { methods: ['bnp', 'clp'] }],
  ];
  const folder = ([name, from, config]: [string, string, object]) => {
    mkdirSync(join(dir, name));
    const model = join(dir, name, from.endsWith('.pt') ? 'model.pt' : 'model.onnx');
    copyFileSync(from, model);
    writeFileSync(join(dir, name, 'backdoor-lens.json'), JSON.stringify({ data: '../data/clean.npz', ...config }, null, 2));
    return model;
  };
  // The warm-up scan goes through every path the soak takes once (a state_dict built into a graph,
  // its gradient, each analysis), so the baseline holds their one-time costs and not only one model's.
  const warmUp = folder(['warm-up', join(fixtures, 'badnets', 'model.pt'), { methods: ['pairs', 'bnp', 'clp'], methodOptions: { pairs: quickPairs } }]);
  return { dir, models: cases.map(folder), warmUp };
}

/** Resident memory of a process in bytes (Linux). */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Collects garbage in the server and its worker, lets it sit idle, collects again, then reads RSS. */
async function settledRss(client: TestClient): Promise<{ rss: number; collected: boolean; heap: string; workerStarts: number }> {
  const first = await client.connection.sendRequest(DebugMemoryRequest);
  await sleep(settleMs);
  const second = await client.connection.sendRequest(DebugMemoryRequest);
  const heap = `heap used/committed: server ${mib(second.heapUsed)}/${mib(second.heapTotal)}, worker ${second.worker ? `${mib(second.worker.heapUsed)}/${mib(second.worker.heapTotal)}` : 'n/a'}`;
  // The engine runs in a worker process: the server's memory is both processes' resident memory.
  return { rss: rssOf(client.process.pid!) + (second.worker?.rss ?? 0), collected: first.collected && second.collected, heap, workerStarts: second.workerStarts };
}

type Outcome = 'completed' | 'cancelled' | 'error';

async function scanOnce(client: TestClient, model: string, token: string, cancelAfterMs: number | undefined): Promise<{ outcome: Outcome; ms: number; detail?: string }> {
  const t0 = Date.now();
  const cts = new CancellationTokenSource();
  const timer = cancelAfterMs === undefined ? undefined : setTimeout(() => cts.cancel(), cancelAfterMs);
  let result: { outcome: Outcome; ms: number; detail?: string };
  try {
    const summary = await client.connection.sendRequest(ScanRequest, { uri: fileUri(model), force: true, workDoneToken: token }, cts.token);
    const ms = Date.now() - t0;
    result = summary.status === 'done' ? { outcome: 'completed', ms } : { outcome: 'error', ms, detail: `failed: ${summary.message}` };
  } catch (e) {
    const ms = Date.now() - t0;
    result = e instanceof ResponseError && e.code === LSPErrorCodes.RequestCancelled ? { outcome: 'cancelled', ms } : { outcome: 'error', ms, detail: String(e) };
  } finally {
    clearTimeout(timer);
    cts.dispose();
  }
  // A clean end closes its progress too.
  for (let i = 0; (client.progress.get(token) ?? []).at(-1)?.kind !== 'end'; i++) {
    if (i >= 100) return { outcome: 'error', ms: result.ms, detail: `${result.outcome}, but its progress never ended` };
    await sleep(20);
  }
  client.progress.delete(token);
  // And leaves the checkpoint settled: its results, or none after a first scan was cancelled.
  const view = await client.connection.sendRequest(ReportRequest, { uri: fileUri(model) });
  if (view.status !== 'done' && view.status !== 'cancelled') return { outcome: 'error', ms: result.ms, detail: `${result.outcome}, but the checkpoint is left '${view.status}'` };
  return result;
}

async function main(): Promise<number> {
  for (const f of ['cli.js', 'worker.js']) {
    if (!existsSync(join(root, 'dist', f))) {
      console.error(`soak: dist/${f} is missing; run \`npm run build\` first (the soak test runs the built server and builds nothing itself)`);
      return 1;
    }
  }
  const ws = workspace();
  // Seeded, so a failing run can be repeated exactly.
  const rand = mulberry32(seed);
  const started = Date.now();
  // The bin script runs dist/cli.js's main(); --expose-gc lets the debug memory request collect garbage.
  // The environment is the one the VS Code client starts the server with.
  const child = spawn(process.execPath, ['--expose-gc', join(root, 'bin', 'backdoor-lens.js'), 'lsp', '--stdio'], { cwd: ws.dir, env: serverEnvironment(), stdio: ['pipe', 'pipe', 'pipe'] });
  const client = await connectClient(child, { workspace: ws.dir, init: {}, settings: {} });
  const counts = { run: 0, cancelRequested: 0, cancelled: 0, completed: 0, errors: 0 };
  const errors: string[] = [];
  let peak = 0;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(child.pid!));
    } catch {
      // the process is gone; the liveness check reports it
    }
  }, 200);
  let alive = false;
  let baseline = { rss: 0, collected: false, heap: '', workerStarts: 0 };
  let final = { rss: 0, collected: false, heap: '', workerStarts: 0 };
  /** Settled RSS every tenth of the run: a leak climbs, allocator noise does not. */
  const trend: string[] = [];
  try {
    const warm = await scanOnce(client, ws.warmUp, 'warm-up', undefined);
    if (warm.outcome !== 'completed') throw new Error(`the warm-up scan did not complete: ${warm.detail ?? warm.outcome}`);
    // Then every checkpoint of the rotation once: the server keeps each one's latest report, which
    // is state it is meant to hold, not growth. A leak shows as growth past this point.
    for (const [k, model] of ws.models.entries()) {
      const r = await scanOnce(client, model, `warm-up-${k}`, undefined);
      if (r.outcome !== 'completed') throw new Error(`the warm-up scan of ${model} did not complete: ${r.detail ?? r.outcome}`);
    }
    baseline = await settledRss(client);
    peak = baseline.rss;

    // Which scans to cancel: a seeded pick of that share of them.
    const order = Array.from({ length: scans }, (_, i) => ({ i, key: rand() })).sort((a, b) => a.key - b.key);
    const toCancel = new Set(order.slice(0, Math.round(cancelRate * scans)).map((x) => x.i));
    // How long each model's scan last took, so a cancellation lands anywhere from queued to nearly done.
    const lasted = new Map<string, number>();
    for (let i = 0; i < scans; i++) {
      const model = ws.models[Math.floor(rand() * ws.models.length)];
      const cancel = toCancel.has(i);
      const delay = cancel ? Math.round(rand() * (lasted.get(model) ?? warm.ms)) : undefined;
      const r = await scanOnce(client, model, `soak-${i}`, delay);
      if (r.outcome === 'completed') lasted.set(model, r.ms);
      counts.run++;
      if (cancel) counts.cancelRequested++;
      counts[r.outcome === 'error' ? 'errors' : r.outcome]++;
      if (process.env.SOAK_VERBOSE) process.stderr.write(`scan ${i}: ${r.outcome} after ${r.ms} ms${cancel ? ` (cancel at ${delay} ms)` : ''} ${model.slice(ws.dir.length + 1)} rss ${mib(rssOf(child.pid!))}\n`);
      if (r.detail) errors.push(`scan ${i} (${model.slice(ws.dir.length + 1)}${cancel ? `, cancel at ${delay} ms` : ''}): ${r.detail}`);
      const line = `scan ${String(i + 1).padStart(String(scans).length)}/${scans}  ${r.outcome.padEnd(9)}  ${model.slice(ws.dir.length + 1).padEnd(20)}  rss ${mib(rssOf(child.pid!))}`;
      if (process.stderr.isTTY) process.stderr.write(`\r${line}`);
      else if ((i + 1) % 10 === 0 || i + 1 === scans) process.stderr.write(`${line}\n`);
      if ((i + 1) % Math.max(1, Math.round(scans / 5)) === 0 && i + 1 < scans) trend.push(`${i + 1}: ${mib((await settledRss(client)).rss)}`);
    }
    if (process.stderr.isTTY) process.stderr.write('\n');

    final = await settledRss(client);
    // Still serving: a report, an outline and the memory request all answer.
    const report = await client.connection.sendRequest(ReportRequest, { uri: fileUri(ws.models[0]) });
    const outline = await client.connection.sendRequest(OutlineRequest, { uri: fileUri(ws.models[1]) });
    alive = child.exitCode === null && typeof report.status === 'string' && outline.length > 0;
  } catch (e) {
    errors.push(`soak stopped: ${(e as Error).message}`);
  } finally {
    clearInterval(sampler);
  }

  const ratio = baseline.rss ? final.rss / baseline.rss : NaN;
  const pass = alive && counts.errors === 0 && errors.length === 0 && counts.run === scans && ratio <= 1 + maxGrowth;
  const rows: [string, string][] = [
    ['scans run', `${counts.run}`],
    ['cancelled', `${counts.cancelled} (of ${counts.cancelRequested} cancellations sent; the rest finished first)`],
    ['completed', `${counts.completed}`],
    ['errors', `${counts.errors}`],
    ['baseline RSS', `${mib(baseline.rss)} (after initialize and the warm-up: every path once, each checkpoint once${baseline.collected ? ', GC' : ', no GC'})`],
    ['', baseline.heap],
    ['peak RSS', mib(peak)],
    ['final RSS', `${mib(final.rss)}${final.collected ? ' (GC)' : ''}`],
    ['', final.heap],
    ['settled RSS by scan', trend.join(', ') || 'n/a'],
    ['worker threads', `${final.workerStarts} started (one more per cancelled job that had to be terminated)`],
    ['ratio', `${ratio.toFixed(3)} (limit ${(1 + maxGrowth).toFixed(2)})`],
    ['server alive', alive ? 'yes' : 'no'],
    ['wall time', `${((Date.now() - started) / 1000).toFixed(1)} s`],
    ['seed', `${seed}`],
    ['result', pass ? 'PASS' : 'FAIL'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n'));
  if (errors.length) console.log(`\n${errors.join('\n')}`);
  if (!pass && client.stderr().trim()) console.log(`\nserver stderr:\n${client.stderr().trim().split('\n').slice(-20).join('\n')}`);

  await client.stop();
  rmSync(ws.dir, { recursive: true, force: true });
  return pass ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`soak: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
