/** Messages between the language server and its engine worker thread (structured-clone safe). */
import type { ErrorCode, ModelOutline, ScanReport } from '../../../engine';
import type { AvailableFix, TriggerView } from '../../../protocol/report-view';
import type { FixSummary } from '../../../protocol/lsp';
import type { ScanSettings } from '../settings';

/** The outline document's model: the engine's outline of the loaded graph. */
export type { Dim, ModelOutline, OutlineLayer } from '../../../engine';

export interface ImageBytes {
  kind: string;
  name: string;
  png: Uint8Array;
  label?: number;
  pair?: { source: number; target: number };
}

export type JobRequest =
  | { kind: 'scan'; path: string; settings: ScanSettings }
  | { kind: 'describe'; path: string; settings: ScanSettings }
  /** `outputs`: the paths claimed for each output label the fix may end with (engine outputLabel: 'purified', 'bnp-failed', …). */
  | { kind: 'fix'; path: string; method: string; layer?: string; settings: ScanSettings; outputs: Record<string, { onnx: string; safetensors?: string }> };

export interface ScanJobResult {
  kind: 'scan';
  report: ScanReport;
  images: ImageBytes[];
  /** The reversed triggers, for the trigger viewer. */
  triggers: TriggerView[];
  triggersTotal: number;
  outline: ModelOutline;
  fixes: AvailableFix[];
}

export interface DescribeJobResult {
  kind: 'describe';
  outline: ModelOutline;
  fixes: AvailableFix[];
}

export interface FixJobResult {
  kind: 'fix';
  /** Paths written (the server turns them into URIs); empty when the fix produced no model. */
  written: string[];
  summary: Omit<FixSummary, 'source' | 'outputs'>;
  /** The scan of the written model that confirmed the removal: the server serves it as that file's scan. */
  rescan?: Omit<ScanJobResult, 'kind'>;
}

export type JobResult = ScanJobResult | DescribeJobResult | FixJobResult;

export interface JobError {
  code: ErrorCode;
  message: string;
  file?: string;
}

/** The worker's heap after collecting garbage (when it can), for the debug memory request. */
export interface WorkerMemory {
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** The worker process's resident memory. */
  rss?: number;
  collected: boolean;
}

export type ToWorker = { type: 'run'; id: number; job: JobRequest } | { type: 'cancel'; id: number } | { type: 'memory'; id: number };

export type FromWorker =
  | { type: 'progress'; id: number; fraction: number; stage: string; method?: string }
  | { type: 'done'; id: number; result: JobResult }
  | { type: 'failed'; id: number; error: JobError }
  | { type: 'memory'; id: number; memory: WorkerMemory };
