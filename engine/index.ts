/**
 * Backdoor Lens engine: the small typed API the CLI, the language server and the tests use.
 * Load a model, load data, scan, fix, evaluate; reports in and out.
 */
export { loadModel, modelReaders, type LoadedModel, type LoadOptions, type LoadLimits } from './formats';
export { UnsafeCheckpointError, isUnsafeCheckpointError, architectureNames, purifiedWeights, type PurifiedWeights } from './formats';
export { loadDataset, readRawImages, imageSizeOf, type Dataset, type DataSource, type PreprocessSpec } from './data';
export { loadModelForData } from './load-for-data';
export { refusedScanReport, formatRefusedReport } from './refused';
export { scan, resolveMethods, type ScanRequest, type ScanResult, type ScanProgress } from './scan';
export { Eta, etaText, withEta } from './eta';
export { applyFix, autoCandidates, type FixRequest, type RescanRequest } from './fix';
export { fixOutputs, outputLabel, type FixOutputs } from './fixes/output-name';
export { AUTO } from './fixes/registry';
export { reversedAgainText, type ReversedAgain } from './fixes/reverse-again';
export { evaluate, predict, imageInputOf, type EvalResult, type EvalOptions } from './evaluate';
export { modelInfo, formatInfo, type ModelInfo } from './info';
export { Runtime, type RuntimeOptions, type ExecutionProvider } from './runtime';
export { analyses } from './analyses/registry';
export { fixes } from './fixes/registry';
export { formatReport } from './report/text';
export { toSarif } from './report/sarif';
export { findingCodes, codeInfo, codeDocPath } from './report/codes';
export { findConfig, readConfig, parseConfig, CONFIG_FILE, type BackdoorLensConfig } from './config';
export { BackdoorLensError, type ErrorCode } from './errors';
export { writeFileAtomic, writeFilesAtomic, removeTempFiles, assertNotInput, checkOutputPath } from './io/atomic';
export type * from './report/types';
export type { FixResult, FixTrial, PrunedNeuron } from './fixes/types';
export type { FixMeasurement, TriggeredSet } from './fixes/measure';
export type { FixOutcome } from './fixes/outcome';
export { TOOL_VERSION } from './version';
export { asBackdoorLensError } from './errors';
export { executionProviders } from './runtime';
export { JobGuard, ProcessWatchdog, memoryLimitError, timeLimitError, watchdogGraceMs, defaultTimeLimitSeconds, residentBytes, type JobLimits } from './runtime/limits';
export { openRegular } from './io/files';
export type { AnalysisOutput } from './analyses/types';
export { modelOutline, refusedOutline, type ModelOutline, type OutlineLayer, type Dim } from './outline';
export { triggerViews, TRIGGER_LIMIT, type PixelImage, type TriggerView } from './report/trigger-views';
export { Session, type SessionConfig, type SessionScan, type SessionFix, type DataRequest, type Measurement, type MeasureOptions, type FixFiles } from './session';
export type { LoadedConfig } from './config';
export { methodOptionSpecs, parseMethodOptions, checkOptions as checkMethodOptions, methodOptionsHelp } from './methods';
export { mergeMethodOptions, type MethodOptions, type OptionSpec, type OptionSpecs } from './method-options';
