/**
 * A folder with one subfolder per class, holding PNG or JPEG images. Classes are numbered like
 * torchvision's ImageFolder (sorted names), except that all-numeric folder names are used as the
 * class index itself ('0', '1', …, '10' keep their numbers).
 */
import { readdirSync, statSync } from 'node:fs';
import { readRegularFile } from '../io/files';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { badData, badFile } from '../errors';
import type { RawImages } from './types';

const imageExt = /\.(png|jpe?g)$/i;

export interface DecodedImage {
  width: number;
  height: number;
  /** RGBA, 8 bits per channel. */
  rgba: Uint8Array;
}

export function decodeImage(path: string, bytes: Uint8Array = readRegularFile(path, { code: 'bad-data', what: 'image' }), maxPixels = 64 * 2 ** 20): DecodedImage {
  try {
    if (bytes.length >= 4 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
      // Check the declared size in the IHDR before pngjs allocates for it.
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (bytes.length >= 24 && view.getUint32(16) * view.getUint32(20) > maxPixels) throw new Error(`declares ${view.getUint32(16)}×${view.getUint32(20)} pixels, over the limit of ${maxPixels}`);
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return { width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length) };
    }
    if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8) {
      const img = jpeg.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
        useTArray: true,
        formatAsRGBA: true,
        maxResolutionInMP: maxPixels / 1e6,
        maxMemoryUsageInMB: Math.ceil((maxPixels * 8) / 2 ** 20),
      });
      return { width: img.width, height: img.height, rgba: img.data };
    }
  } catch (e) {
    throw badFile(path, `cannot decode image: ${(e as Error).message}`, e);
  }
  throw badFile(path, 'not a PNG or JPEG image');
}

export function readImageFolder(root: string): RawImages {
  const classDirs = readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  const numeric = classDirs.length > 0 && classDirs.every((d) => /^\d+$/.test(d));
  const ordered = numeric ? classDirs.sort((a, b) => Number(a) - Number(b)) : classDirs.sort();
  const files: { path: string; label: number }[] = [];
  ordered.forEach((dir, index) => {
    for (const f of readdirSync(join(root, dir)).sort()) {
      if (imageExt.test(f) && statSync(join(root, dir, f)).isFile()) files.push({ path: join(root, dir, f), label: numeric ? Number(dir) : index });
    }
  });
  if (files.length === 0) {
    throw badData(root, classDirs.length === 0
      ? 'the data folder has no class subfolders; expected <folder>/<class>/<image>.png or .jpg'
      : `the data folder has no PNG or JPEG images in its ${classDirs.length} class subfolders`);
  }
  let width = 0, height = 0, channels = 1;
  const decoded = files.map(({ path }) => {
    const img = decodeImage(path);
    if (width === 0) ((width = img.width), (height = img.height));
    else if (img.width !== width || img.height !== height) throw badData(path, `is ${img.width}×${img.height} but the other images are ${width}×${height}; all images of a data folder must share one size`);
    for (let i = 0; i < img.rgba.length && channels === 1; i += 4) if (img.rgba[i] !== img.rgba[i + 1] || img.rgba[i] !== img.rgba[i + 2]) channels = 3;
    return img;
  });
  const n = decoded.length, hw = width * height;
  const pixels = new Uint8Array(n * hw * channels);
  decoded.forEach((img, s) => {
    for (let p = 0; p < hw; p++) for (let c = 0; c < channels; c++) pixels[(s * hw + p) * channels + c] = img.rgba[p * 4 + c];
  });
  return {
    source: root,
    pixels: { dtype: 'uint8', dims: [n, height, width, channels], data: pixels },
    labels: Int32Array.from(files, (f) => f.label),
  };
}
