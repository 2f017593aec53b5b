import type { StateDict, TemplateBuilder, Vec } from './builder';

export interface InputSize {
  height: number;
  width: number;
}

export interface TemplateOptions {
  /** Spatial input size; each family has its default (see docs/formats.md). */
  inputSize?: InputSize;
}

/** How buildFromStateDict picks the input size: given, else the data's for size-agnostic networks, else the default. */
export interface SizeOptions extends TemplateOptions {
  /** The size of the images the model will run on; used when inputSize is absent and the network is size-agnostic. */
  dataSize?: InputSize;
}

/** One architecture family (ResNet, VGG, …): recognises its key layout and builds any of its variants. */
export interface ArchitectureFamily {
  id: string;
  /** The --arch names it builds, each a fixed variant (block counts, depth). */
  names: readonly string[];
  /** Whether the keys carry this family's signature (cheap; build() does the full check). */
  recognises(sd: StateDict): boolean;
  /** The variant name for weights it recognises, read from the keys. */
  variantOf(sd: StateDict): string;
  /** Builds `name` (one of names, or what variantOf returned); returns the logits. */
  build(b: TemplateBuilder, name: string, options: TemplateOptions): Vec;
  /** Names the report should mention (the head, the shortcuts) for weights it built. */
  describe?(sd: StateDict): string[];
}

/** Why weights cannot be built with a template; the message lists what is missing or extra. */
export class ArchitectureError extends Error {}
