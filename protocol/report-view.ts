/**
 * What the report view shows, and the messages between the report webview and the extension.
 * Types only: the webview bundle imports nothing from the engine or the language client.
 */
import type { ScanReport } from '../engine/report/types';
import type { FixSummary } from './lsp';

export type CheckpointStatus = 'not-scanned' | 'queued' | 'scanning' | 'done' | 'failed' | 'cancelled' | 'stale';

export interface ReportImage {
  kind: string;
  name: string;
  label?: number;
  pair?: { source: number; target: number };
  /** data:image/png;base64,… (the webview loads no remote or file resources). */
  dataUri: string;
}

export interface AvailableFix {
  id: string;
  title: string;
  /** Why it cannot apply to this model, if it cannot. */
  notApplicable?: string;
}

export interface ReportView {
  uri: string;
  fileName: string;
  status: CheckpointStatus;
  /** Stage text while scanning ('pairs: pair 37/90'), or the error when failed. */
  message?: string;
  /** Fraction done while scanning. */
  fraction?: number;
  report?: ScanReport;
  images: ReportImage[];
  /** Set when this checkpoint was written by a fix: accuracy and ASR before and after. */
  fix?: FixSummary;
  fixes: AvailableFix[];
}

/** Webview → extension. */
export type FromWebview =
  | { type: 'ready' }
  | { type: 'scan' }
  | { type: 'fix'; method: string }
  | { type: 'openOutline' };

/** Extension → webview. */
export type ToWebview = { type: 'view'; view: ReportView };
