/**
 * The torchvision families whose forward() is more than their children in order, one file each;
 * convert.ts looks a module's class up here before its own torch.nn layers and older families.
 */
import { convNeXtConverters } from './convnext';
import { efficientNetConverters } from './efficientnet';
import { regNetConverters } from './regnet';
import { shuffleNetConverters } from './shufflenet';
import { swinConverters } from './swin';
import { vitConverters } from './vit';
import type { Converter } from './types';

export const familyConverters: ReadonlyMap<string, Converter> = new Map(Object.entries({
  ...shuffleNetConverters,
  ...regNetConverters,
  ...efficientNetConverters,
  ...convNeXtConverters,
  ...vitConverters,
  ...swinConverters,
}));

export type { Converter, Run } from './types';
