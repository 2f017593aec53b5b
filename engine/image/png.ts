/**
 * PNG images of reversed triggers: the mask, the pattern and a stamped example, written with pngjs.
 * Values come in model-input space (after preprocessing); they are mapped back to pixels with the
 * preprocessing's mean and std so the pattern looks like the image the model saw.
 */
import { PNG } from 'pngjs';
import type { ResolvedPreprocess } from '../data/types';

export interface PngOptions {
  /**
   * Nearest-neighbour upscaling so small inputs stay readable when opened directly
   * (a 28×28 mask becomes 112×112 by default; images already that large are kept as they are).
   */
  minSize?: number;
}

function upscaleFactor(height: number, width: number, minSize: number): number {
  return Math.max(1, Math.ceil(minSize / Math.max(height, width)));
}

/** Encodes an RGBA buffer (row-major, 4 bytes a pixel), upscaled by an integer factor. */
export function encodeRgba(width: number, height: number, rgba: Uint8Array, options: PngOptions = {}): Uint8Array {
  if (rgba.length !== width * height * 4) throw new Error(`RGBA buffer holds ${rgba.length} bytes; ${width}×${height} needs ${width * height * 4}`);
  const f = upscaleFactor(height, width, options.minSize ?? 112);
  const png = new PNG({ width: width * f, height: height * f });
  for (let y = 0; y < height * f; y++) {
    for (let x = 0; x < width * f; x++) {
      const src = ((Math.floor(y / f) * width) + Math.floor(x / f)) * 4;
      const dst = (y * width * f + x) * 4;
      for (let k = 0; k < 4; k++) png.data[dst + k] = rgba[src + k];
    }
  }
  return new Uint8Array(PNG.sync.write(png));
}

const toByte = (v: number) => Math.max(0, Math.min(255, Math.round(v * 255)));

/** A per-pixel mask in [0, 1] (H·W values) as a grey image: white where the trigger is. */
export function maskPng(mask: ArrayLike<number>, height: number, width: number, options?: PngOptions): Uint8Array {
  if (mask.length !== height * width) throw new Error(`mask holds ${mask.length} values; ${height}×${width} needs ${height * width}`);
  const rgba = new Uint8Array(height * width * 4);
  for (let i = 0; i < height * width; i++) {
    const b = toByte(mask[i]);
    rgba.set([b, b, b, 255], i * 4);
  }
  return encodeRgba(width, height, rgba, options);
}

/**
 * One sample in model-input space and layout (C·H·W values) as an image: grey for one channel,
 * RGB for three, the first channel as grey otherwise.
 */
export function samplePng(values: ArrayLike<number>, p: ResolvedPreprocess, options?: PngOptions): Uint8Array {
  const { channels: C, height: H, width: W, layout } = p;
  if (values.length !== C * H * W) throw new Error(`sample holds ${values.length} values; ${C}×${H}×${W} needs ${C * H * W}`);
  const at = (c: number, i: number) => (layout === 'NCHW' ? values[c * H * W + i] : values[i * C + c]);
  const pixel = (c: number, i: number) => toByte(at(c, i) * (p.std[c] ?? 1) + (p.mean[c] ?? 0));
  const rgba = new Uint8Array(H * W * 4);
  for (let i = 0; i < H * W; i++) {
    const rgb = C === 3 ? [pixel(0, i), pixel(1, i), pixel(2, i)] : [pixel(0, i), pixel(0, i), pixel(0, i)];
    rgba.set([...rgb, 255], i * 4);
  }
  return encodeRgba(W, H, rgba, options);
}

/** Decodes a PNG into its size and RGBA bytes (for tests and the charts). */
export function decodePng(bytes: Uint8Array): { width: number; height: number; rgba: Uint8Array } {
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return { width: png.width, height: png.height, rgba: new Uint8Array(png.data) };
}
