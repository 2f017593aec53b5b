/**
 * Where a fix fits and where it measures itself. A fix never grades itself on the images it was
 * fitted on: the user's data is split once, deterministically, into a fit part and a held-out
 * part (stratified by label, the same split for the same data, share and seed), or a separate
 * held-out set is given and the whole data set is fitted on. A later scan of the fixed model
 * draws the same held-out part from the same data (the share and seed travel in the model's
 * fix record), so its "after" numbers are measured on the same images.
 */
import { SeededRandom } from '../analyses/stats/random';
import { subset, type Dataset } from '../data/types';
import { badData } from '../errors';

/** Share of each class held out when no separate held-out set is given. */
export const DEFAULT_HELD_OUT_SHARE = 0.3;

export interface FixSplit {
  fit: Dataset;
  heldOut: Dataset;
  /** How the held-out images were chosen, in words (for notes and reports). */
  description: string;
  /** The split's parameters, recorded in the fixed model; absent for a separate held-out set. */
  share?: number;
  seed?: number;
}

/** Indices of the held-out part: the first ⌈share·n_c⌉ of each class (labels) or of all samples, in a seeded order. */
export function heldOutIndices(data: Dataset, share: number, seed: number): number[] {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < data.n; i++) {
    const key = data.labels ? data.labels[i] : 0;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(i);
  }
  const out: number[] = [];
  for (const [key, members] of [...groups].sort((a, b) => a[0] - b[0])) {
    // A class of one image stays in the fit part: there is nothing to fit on otherwise.
    const take = members.length < 2 ? 0 : Math.min(members.length - 1, Math.ceil(share * members.length));
    out.push(...new SeededRandom(SeededRandom.derive(seed, 0x48_4f, key)).shuffle(members).slice(0, take));
  }
  return out.sort((a, b) => a - b);
}

/** Splits `data` into fit and held-out parts; `heldOut` given: fit on all of `data`, measure on `heldOut`. */
export function splitForFix(data: Dataset, options: { share?: number; seed?: number; heldOut?: Dataset } = {}): FixSplit {
  if (options.heldOut) {
    return { fit: data, heldOut: options.heldOut, description: `${options.heldOut.n} images of ${options.heldOut.source} (a separate held-out set; fitted on all ${data.n} of ${data.source})` };
  }
  const share = options.share ?? DEFAULT_HELD_OUT_SHARE;
  const seed = options.seed ?? 0;
  if (!(share > 0 && share < 1)) throw badData(data.source, `the held-out share must be between 0 and 1, got ${share}`);
  const held = heldOutIndices(data, share, seed);
  if (held.length === 0) throw badData(data.source, `${data.n} images are too few to hold some out for measuring a fix: give more, or a separate held-out set`);
  const inHeld = new Uint8Array(data.n);
  for (const i of held) inHeld[i] = 1;
  const fitIdx = Array.from({ length: data.n }, (_, i) => i).filter((i) => !inHeld[i]);
  return {
    fit: { ...subset(data, fitIdx), source: data.source },
    heldOut: { ...subset(data, held), source: data.source },
    description: `${held.length} of the ${data.n} images of ${data.source} held out (${Math.round(100 * share)}% of each class, seed ${seed}); fitted on the other ${fitIdx.length}`,
    share,
    seed,
  };
}
