/**
 * The load limits' errors. Each names what was over which limit, by how much, and where the limit
 * is raised: `limits` in backdoor-lens.json, or the matching command-line flag.
 */
import { BackdoorLensError } from '../errors';

function bytesText(n: number): string {
  if (n < 2 ** 10) return `${n} bytes`;
  const [value, unit] = n < 2 ** 20 ? [n / 2 ** 10, 'KiB'] : n < 2 ** 30 ? [n / 2 ** 20, 'MiB'] : [n / 2 ** 30, 'GiB'];
  return `${value.toFixed(1)} ${unit} (${n} bytes)`;
}

/** The file is larger than limits.maxModelBytes. */
export function modelSizeLimitError(file: string, size: number, limit: number): BackdoorLensError {
  return new BackdoorLensError(
    'limit',
    `is ${bytesText(size)}, over the model size limit of ${bytesText(limit)}; raise limits.maxModelBytes in backdoor-lens.json (--max-model-mb on the command line) to load it`,
    { file },
  );
}

/** A tensor or storage holds more elements than limits.maxTensorElements. */
export function tensorLimitError(file: string, what: string, elements: number | bigint, limit: number): BackdoorLensError {
  return new BackdoorLensError(
    'limit',
    `${what} has ${elements} elements, over the tensor size limit of ${limit}; raise limits.maxTensorElements in backdoor-lens.json (--max-tensor-elements on the command line) to load it`,
    { file },
  );
}
