/**
 * The environment the language server is started with, by the VS Code client and the soak test.
 * glibc raises its mmap threshold each time a large block is freed; after that, the large
 * short-lived buffers a scan makes (tensors, onnxruntime's arenas) come from the heap and stay in
 * the process once freed, so an idle server keeps the footprint of its largest scans. A fixed
 * threshold hands them back to the system when each job ends. Other C libraries ignore it; a value
 * already in the environment wins.
 */
export function serverEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { MALLOC_MMAP_THRESHOLD_: String(128 * 1024), ...env };
}
