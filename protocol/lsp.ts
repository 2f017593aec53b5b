/**
 * Custom requests and notifications between the Backdoor Lens language server and its clients
 * (the VS Code client here; any LSP client can send them). Declared once, typed, used by both sides.
 */
import { NotificationType, RequestType, RequestType0 } from 'vscode-jsonrpc';
import type { CheckpointStatus, FixOffer, ReportView } from './report-view';

/** Work-done progress a client may attach to long requests (LSP `workDoneToken`). */
export interface WithWorkDone {
  workDoneToken?: string | number;
}

export interface ScanParams extends WithWorkDone {
  /** file: URI of a checkpoint. */
  uri: string;
  /** Scan again even when a result for the same content and settings is cached. */
  force?: boolean;
}

export type ScanStatus = 'done' | 'failed';

export interface ScanSummary {
  uri: string;
  status: ScanStatus;
  verdict?: 'backdoored' | 'clean' | 'inconclusive';
  targets?: number[];
  /** Finding codes, most severe first. */
  codes: string[];
  /** True when the result came from the content-hash cache. */
  cached: boolean;
  /** A one-line message for the user (the error, or the verdict with its evidence). */
  message: string;
  /** The scan ran without data (data-free methods only): choosing clean data gives a detector verdict. */
  noData?: boolean;
  /** For a failed scan: the error code ('bad-file', 'bad-data', 'limit', …) and the file it is about. */
  error?: { code: string; file?: string };
}

/** Scans a checkpoint; diagnostics are published as usual, and the summary is returned. Cancellable. */
export const ScanRequest = new RequestType<ScanParams, ScanSummary, void>('backdoorLens/scan');

export interface FixParams extends WithWorkDone {
  uri: string;
  /** 'auto' (every applicable fix, cheapest first, keeping the best) or a fix id from the engine's registry. */
  method: string;
  /** Prune exactly this layer's flagged channels (what a layer's code lens names). */
  layer?: string;
}

export interface Measurement {
  /** Clean accuracy on the held-out images; null without labels. */
  accuracy: number | null;
  /** The attack success rate the outcome rests on (the worst of the reversed triggers and the true trigger), when measured. */
  asr: number | null;
}

/** removed: ASR ≤ goal within the accuracy budget and a rescan agrees; reduced: at least halved; failed: anything else. */
export type FixOutcome = 'removed' | 'reduced' | 'failed';

/** One measured attack, before and after, on held-out images. */
export interface AttackRow {
  /** e.g. 'patch trigger 3 → 0', 'true trigger (triggered.npz)'. */
  what: string;
  before: number;
  after: number;
  n: number;
}

export interface FixSummary {
  source: string;
  /** The fix that was applied (for 'auto', the one it kept). */
  method: string;
  /** What was asked for ('auto' or the method). */
  requested: string;
  outcome: FixOutcome;
  /** One line with the numbers: "bnp: failed — the trigger still works: ASR 99.2% → 82.0% …". */
  headline: string;
  /** URIs of the files written (none when the fix produced no model): the ONNX model, and safetensors weights for state_dict inputs. */
  outputs: string[];
  pruned: { layer: string; channel: number; score?: number }[];
  notes: string[];
  before: Measurement;
  after: Measurement;
  /** How the attack success rate was measured, e.g. '300 held-out images of clean.npz; reversed triggers and triggered.npz'. */
  asrSource?: string;
  /** Every attack measured. */
  attacks: AttackRow[];
  /** Clean accuracy per class on the same held-out images, before and after (absent without a measurement). */
  perClass?: { label: number; before: number; after: number; n: number }[];
  /** For 'auto': every fix tried, cheapest first. */
  tried?: { method: string; outcome: FixOutcome; reason: string; asr: number | null; accuracy: number | null; seconds: number; chosen: boolean }[];
  /** The rescan of the written model that confirmed a removal (or overturned it), when one ran. */
  rescan?: { verdict: 'backdoored' | 'clean' | 'inconclusive'; targets: number[] };
}

/** Applies a fix and writes the fixed model beside the input, named for its outcome (never overwriting). Cancellable. */
export const FixRequest = new RequestType<FixParams, FixSummary, void>('backdoorLens/fix');

export interface UriParams {
  uri: string;
}

/** What the report view shows for a checkpoint (its last scan, images, the fix that produced it). */
export const ReportRequest = new RequestType<UriParams, ReportView, void>('backdoorLens/report');

/** The text of a checkpoint's model outline document. */
export const OutlineRequest = new RequestType<UriParams, string, void>('backdoorLens/outline');

/** What changed about a checkpoint: enough for a status bar and file decorations without asking for the report. */
export interface CheckpointChange extends UriParams {
  status?: CheckpointStatus;
  verdict?: 'backdoored' | 'clean' | 'inconclusive';
  /** One line: the verdict with the evidence that decided it, the stage while scanning, or why it could not be scanned. */
  summary?: string;
  /** Whether the last scan ran without data (data-free methods only). */
  noData?: boolean;
}

/** The state of a checkpoint changed (scan started, finished, invalidated): report views, decorations and the status bar refresh. */
export const ReportChangedNotification = new NotificationType<CheckpointChange>('backdoorLens/reportChanged');

/** The fixes the editor offers for a checkpoint's last scan, best first (the command palette's Apply Fix…). */
export const FixOffersRequest = new RequestType<UriParams, FixOffer[], void>('backdoorLens/fixOffers');

/** Memory of the server process, in bytes, as `process.memoryUsage()` reports it. */
export interface MemoryUsage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export interface DebugMemoryReport extends MemoryUsage {
  /** Whether garbage was collected first (the server runs with --expose-gc). */
  collected: boolean;
  /** Engine worker threads started so far (a cancelled job deaf to its cancel costs a thread). */
  workerStarts: number;
  /** The engine worker process's own memory, when one is running and answered (rss: its resident memory). */
  worker?: { heapUsed: number; heapTotal: number; external: number; arrayBuffers: number; rss?: number };
}

/**
 * For soak tests and bug reports: collects garbage where it can (server and worker thread), then
 * reports the process's memory. Not used by the editor client.
 */
export const DebugMemoryRequest = new RequestType0<DebugMemoryReport, void>('backdoorLens/debug/memory');

/** Options the client passes in `initializationOptions`. */
export interface InitializationOptions {
  /**
   * Publish per-finding diagnostics on a read-only outline document (scheme `backdoor-lens-outline`)
   * that the client can open. Without it, every finding goes on the checkpoint's own URI.
   */
  outlineDocuments?: boolean;
  /** Code actions and lenses name the client-side commands (`backdoorLens.*`) instead of the server's. */
  clientCommands?: boolean;
  /** Base URI of the findings pages (`<base>/BL001.md`); default: the docs/findings folder beside the server. */
  docsBaseUri?: string;
}

export const OUTLINE_SCHEME = 'backdoor-lens-outline';
export const OUTLINE_LANGUAGE = 'backdoor-lens-outline';

/** Commands the server executes (workspace/executeCommand); any LSP client can run them. */
export const ServerCommands = {
  scan: 'backdoorLens.server.scan',
  applyFix: 'backdoorLens.server.applyFix',
} as const;

/** The same operations as VS Code commands the client registers (with notification progress). */
export const ClientCommands = {
  scan: 'backdoorLens.scan',
  applyFix: 'backdoorLens.applyFix',
  openReport: 'backdoorLens.openReport',
  openOutline: 'backdoorLens.openOutline',
  chooseData: 'backdoorLens.chooseData',
  openFindingDoc: 'backdoorLens.openFindingDoc',
  showLog: 'backdoorLens.showLog',
  openConfig: 'backdoorLens.openConfig',
} as const;

/** Arguments of the applyFix commands. */
export interface ApplyFixArgs {
  uri: string;
  /** 'auto' or a fix id. */
  method: string;
  /** Prune exactly this layer's flagged channels (a layer's code lens). */
  layer?: string;
}
