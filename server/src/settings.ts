/**
 * What a scan of one checkpoint runs with: the editor's settings (`backdoorLens.*`), overridden by
 * a backdoor-lens.json beside the model or at the workspace root (the same file the CLI reads).
 */
import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { findConfig, mergeMethodOptions, type BackdoorLensConfig, type MethodOptions } from '../../engine';

/** The editor settings section `backdoorLens`, as the client sends it. */
export interface EditorSettings {
  data?: string;
  dataKind?: 'clean' | 'mixed';
  triggeredData?: string;
  methods?: string[];
  threshold?: number;
  /** Options per method, as "methodOptions" in backdoor-lens.json (`{ "pairs": { "imagesPerClass": 50 } }`). */
  methodOptions?: MethodOptions;
  executionProvider?: 'cpu' | 'cuda' | 'webgpu';
  timeLimitSeconds?: number;
}

/** Everything the worker needs, serialisable; also the cache key together with the content hash. */
export interface ScanSettings extends BackdoorLensConfig {
  /** A triggered test set (true labels) to measure the attack success rate after a fix. */
  triggeredData?: string;
  /** The backdoor-lens.json these settings came from, if any. */
  configPath?: string;
}

const nonEmpty = (s: string | undefined) => (s && s.trim() ? s.trim() : undefined);

function absolute(p: string | undefined, base: string | undefined): string | undefined {
  const v = nonEmpty(p);
  if (!v) return undefined;
  return isAbsolute(v) || !base ? v : resolve(base, v);
}

/**
 * Merges editor settings (paths relative to the workspace folder) with backdoor-lens.json.
 * A config file that does not parse throws a BackdoorLensError naming it.
 */
export function resolveSettings(modelPath: string, editor: EditorSettings, workspaceRoot: string | undefined): ScanSettings {
  const fromEditor: ScanSettings = {
    data: absolute(editor.data, workspaceRoot),
    dataKind: editor.dataKind,
    triggeredData: absolute(editor.triggeredData, workspaceRoot),
    methods: editor.methods?.length ? editor.methods : undefined,
    threshold: editor.threshold,
    methodOptions: editor.methodOptions && Object.keys(editor.methodOptions).length ? editor.methodOptions : undefined,
    executionProvider: editor.executionProvider,
    timeLimitSeconds: editor.timeLimitSeconds && editor.timeLimitSeconds > 0 ? editor.timeLimitSeconds : undefined,
  };
  const found = findConfig(modelPath, workspaceRoot);
  const merged: ScanSettings = { ...fromEditor };
  if (found) {
    for (const [k, v] of Object.entries(found.config)) if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
    // Method options merge per key: the file's win, the editor's other keys stay.
    if (fromEditor.methodOptions && found.config.methodOptions) merged.methodOptions = mergeMethodOptions(fromEditor.methodOptions, found.config.methodOptions);
    merged.configPath = found.path;
  }
  for (const k of Object.keys(merged) as (keyof ScanSettings)[]) if (merged[k] === undefined) delete merged[k];
  return merged;
}

/** Identifies the settings and the data files' versions, so a changed data set is not served from cache. */
export function settingsKey(s: ScanSettings): string {
  const stamp = (p: string | undefined) => {
    if (!p) return null;
    try {
      const st = statSync(p);
      return `${st.size}:${st.mtimeMs}`;
    } catch {
      return 'missing';
    }
  };
  const sorted = Object.fromEntries(Object.entries(s).sort(([a], [b]) => a.localeCompare(b)));
  return JSON.stringify({ ...sorted, dataStamp: stamp(s.data), labelsStamp: stamp(s.labels), triggeredStamp: stamp(s.triggeredData) });
}
