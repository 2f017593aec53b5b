/**
 * The same weights under the key names the templates use, when the file's names differ only in
 * structure-preserving ways: a wrapper prefix ('module.' from DataParallel, 'model.', 'backbone.',
 * torch.compile's '_orig_mod.'), residual blocks kept in one flat Sequential ('layers.0' …
 * 'layers.7') or in a list of stages ('layers.0.1'), shortcut parts named 'conv' / 'bn'. Each view
 * adds one renaming to the one before; the templates try them in order, the file's own names first,
 * and the report says which renamings the match needed.
 */
import type { StateDict } from './builder';
import type { Tensor } from '../../tensor';

export interface KeyView {
  sd: StateDict;
  /** Key in this view → the key as the file spells it. */
  original: Map<string, string>;
  /** What was renamed, for the report (empty: the file's own names). */
  renames: string[];
}

const WRAPPER_PREFIXES = ['module', 'model', 'net', 'network', 'backbone', '_orig_mod', 'base_model'];
const BLOCK_LISTS = ['layers', 'blocks', 'res_layers', 'residual_layers', 'stages', 'body'];
const BLOCK_PARTS = /^(conv\d|bn\d|shortcut|downsample)\./;

/** A view with every key renamed by `rename`; undefined when two keys would collide or nothing changes. */
function renamed(view: KeyView, rename: (key: string) => string, what: string): KeyView | undefined {
  const sd: StateDict = new Map();
  const original = new Map<string, string>();
  let changed = false;
  for (const [key, t] of view.sd) {
    const next = rename(key);
    if (sd.has(next)) return undefined;
    changed ||= next !== key;
    sd.set(next, t);
    original.set(next, view.original.get(key) ?? key);
  }
  return changed ? { sd, original, renames: [...view.renames, what] } : undefined;
}

/** Strips a prefix every key shares (repeatedly: 'module.model.'). */
function withoutWrapper(view: KeyView): KeyView | undefined {
  let current = view;
  for (;;) {
    const keys = [...current.sd.keys()];
    const prefix = WRAPPER_PREFIXES.find((p) => keys.every((k) => k.startsWith(`${p}.`)));
    if (!prefix) return current === view ? undefined : current;
    const next = renamed(current, (k) => k.slice(prefix.length + 1), `'${prefix}.' prefix removed`);
    if (!next) return current === view ? undefined : current;
    current = next;
  }
}

/**
 * Residual blocks in one list: 'layers.S.B.*' (a list of stages) becomes 'layer{S+1}.B.*';
 * 'layers.I.*' (one flat list of blocks) is cut into stages at each block with a projection
 * shortcut ('shortcut' / 'downsample'), as a new stage starts where the width or stride changes.
 */
function stagedBlocks(view: KeyView): KeyView | undefined {
  for (const list of BLOCK_LISTS) {
    const nested = new RegExp(`^${list}\\.(\\d+)\\.(\\d+)\\.(.+)$`);
    const flat = new RegExp(`^${list}\\.(\\d+)\\.(.+)$`);
    const keys = [...view.sd.keys()].filter((k) => k.startsWith(`${list}.`));
    if (keys.length === 0) continue;
    if (keys.every((k) => nested.test(k) && BLOCK_PARTS.test(nested.exec(k)![3]))) {
      const stages = new Set(keys.map((k) => Number(nested.exec(k)![1])));
      return renamed(view, (k) => k.replace(nested, (_, s, b, rest) => `layer${Number(s) + 1}.${b}.${rest}`), `stages '${list}.0'…'${list}.${Math.max(...stages)}' read as 'layer1'…'layer${stages.size}'`);
    }
    if (!keys.every((k) => flat.test(k) && BLOCK_PARTS.test(flat.exec(k)![2]))) continue;
    const blocks = [...new Set(keys.map((k) => Number(flat.exec(k)![1])))].sort((a, b) => a - b);
    if (blocks.some((b, i) => b !== i)) continue;
    const projects = (b: number) => keys.some((k) => k.startsWith(`${list}.${b}.shortcut.`) || k.startsWith(`${list}.${b}.downsample.`));
    const place = new Map<number, string>();
    let stage = 0, index = 0;
    for (const b of blocks) {
      if (b === 0 || projects(b)) {
        stage++;
        index = 0;
      }
      place.set(b, `layer${stage}.${index++}`);
    }
    const counts = Array.from({ length: stage }, (_, s) => [...place.values()].filter((p) => p.startsWith(`layer${s + 1}.`)).length);
    return renamed(
      view,
      (k) => k.replace(flat, (_, b, rest) => `${place.get(Number(b))}.${rest}`),
      `blocks '${list}.0'…'${list}.${blocks.length - 1}' read as ${counts.length} stages of ${counts.join(', ')} blocks ('layer1.0'…'${place.get(blocks.length - 1)}')`,
    );
  }
  return undefined;
}

/** Shortcut parts named rather than numbered: '.shortcut.conv.' / '.shortcut.bn.' → '.shortcut.0.' / '.shortcut.1.'. */
function numberedShortcuts(view: KeyView): KeyView | undefined {
  const pattern = /\.(shortcut|downsample)\.(conv|bn)\./;
  if (![...view.sd.keys()].some((k) => pattern.test(k))) return undefined;
  return renamed(view, (k) => k.replace(pattern, (_, s, part) => `.${s}.${part === 'conv' ? 0 : 1}.`), "shortcut parts 'conv' / 'bn' read as '0' / '1'");
}

/** The views the templates try, in order: the file's names (less DataParallel's prefix), then each renaming in turn. */
export function keyViews(weights: Map<string, Tensor>): KeyView[] {
  const own: KeyView = { sd: new Map(weights), original: new Map([...weights.keys()].map((k) => [k, k])), renames: [] };
  const views = [own];
  let current = own;
  for (const step of [withoutWrapper, stagedBlocks, numberedShortcuts]) {
    const next = step(current);
    if (next) views.push((current = next));
  }
  return views;
}
