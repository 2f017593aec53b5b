/** A scan report built for a test: every field empty or neutral unless the test sets it. */
import type { ScanReport } from '../../engine/report/types';

export function scanReport(over: Partial<ScanReport>, modelPath = '/m.onnx', dims: (number | string)[] = ['N', 1, 28, 28]): ScanReport {
  return {
    reportVersion: 1,
    tool: { name: 'backdoor-lens', version: '0' },
    createdAt: new Date(0).toISOString(),
    model: { path: modelPath, sha256: 'a'.repeat(64), format: 'onnx', input: { name: 'input', dims }, numClasses: 10, bn: 'kept' },
    data: null,
    verdict: 'clean',
    evidence: [],
    attackType: null,
    targets: [],
    pairs: [],
    labels: [],
    neurons: [],
    findings: [],
    methods: [],
    timings: { total: 1 },
    artifacts: [],
    seed: 0,
    ...over,
  };
}
