/**
 * Images per onnxruntime call. A call's memory grows with the image: 64 images of 3×224×224
 * through a ResNet-50 hold gigabytes of activations, while 64 of 1×28×28 hold a few megabytes. So
 * a call holds at most the floats of 512 images of 3×32×32 (10 images of 3×224×224), and at most
 * `cap` images: the small-image batch sizes, and with them every result on small images, are as
 * before.
 */
export function imagesPerCall(imageFloats: number, cap: number): number {
  return Math.max(1, Math.min(cap, Math.floor((512 * 3 * 32 * 32) / Math.max(1, imageFloats))));
}

/** Floats of one sample of a batch-major tensor's dims. */
export function sampleFloats(dims: readonly number[]): number {
  return dims.slice(1).reduce((a, b) => a * b, 1);
}
