/**
 * What the report view shows, and the messages between the report webview and the extension.
 * Types only: the webview bundle takes types from the engine (engine/index.ts) and nothing else.
 */
import type { ScanReport, TriggerView } from '../engine';
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
  /**
   * What the fix works from: the channels a neuron method ranks ('neurons', the fix id is the
   * method's id), or the trigger(s) a detector reversed ('trigger': BNA and the like).
   */
  basis?: 'neurons' | 'trigger';
}

/** A fix as the editor offers it for the last scan: the title says what it will do, its expected effect and its cost. */
export interface FixOffer {
  id: string;
  /** e.g. "BNA correction for target 0 — est. ~2 min" or "Prune 4 channels BNP flagged (bn1, bn2, bn3) — est. ~5 s". */
  title: string;
  /** Whether it can act on what the last scan found; the lightbulb offers only these. */
  helps: boolean;
  basis?: AvailableFix['basis'];
  /** Why it cannot help (nothing flagged, no trigger), or why it cannot apply (BN folded, no data). */
  why?: string;
  /** Set when it cannot run at all. */
  disabled?: string;
}

/** The trigger viewer's rows and images, as the engine draws them from the reversed triggers. */
export type { PixelImage, TriggerView } from '../engine';

export interface ReportView {
  uri: string;
  fileName: string;
  status: CheckpointStatus;
  /** Stage text while scanning ('pairs: pair 37/90'), or the error when failed. */
  message?: string;
  /** Fraction done while scanning. */
  fraction?: number;
  /** When it is 'scanning': seconds left, estimated from the progress so far. */
  etaSeconds?: number;
  report?: ScanReport;
  /** Images the analyses wrote that the trigger viewer does not draw itself. */
  images: ReportImage[];
  /** The reversed triggers of the flagged pairs or labels (at most `triggerLimit`). */
  triggers: TriggerView[];
  /** How many flagged pairs or labels had a trigger, when more than were sent. */
  triggersTotal?: number;
  /** Set when this checkpoint was written by a fix: accuracy and ASR before and after. */
  fix?: FixSummary;
  fixes: AvailableFix[];
  /** The fixes as offered for the last scan, best first. */
  offers: FixOffer[];
}

/** Webview → extension. */
export type FromWebview =
  | { type: 'ready' }
  | { type: 'scan' }
  | { type: 'fix'; method: string }
  | { type: 'openOutline' }
  | { type: 'chooseData' }
  | { type: 'openDoc'; code: string }
  | { type: 'showLog' }
  | { type: 'openFile'; uri: string };

/** Extension → webview. */
export type ToWebview = { type: 'view'; view: ReportView };
