/**
 * Writes files so that nothing is lost: data goes to a temporary file beside the target and is
 * renamed into place, so readers see the old file or the new one, never half of one. A write that
 * fails or is cancelled removes its temporary file; one that must not replace an existing file
 * publishes with a hard link, which fails rather than overwrite.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { threadId } from 'node:worker_threads';
import { BackdoorLensError, fsError } from '../errors';

export interface AtomicWriteOptions {
  /** Checked between chunks and before the file is put in place. */
  signal?: AbortSignal;
  /** Never replace an existing file: fail with a usage error naming it instead. */
  exclusive?: boolean;
}

let serial = 0;

/** Temporary files for a target start with this: hidden, beside it, named for it and this process. */
export function tempPrefix(path: string): string {
  return join(dirname(path), `.${basename(path)}.${ownerPid()}.`);
}

/**
 * The process a write belongs to: this one, or the language server whose engine worker process this
 * is (it sets BACKDOOR_LENS_OWNER_PID), so the server can remove what a killed worker left.
 */
function ownerPid(): number {
  const owner = Number(process.env.BACKDOOR_LENS_OWNER_PID);
  return Number.isSafeInteger(owner) && owner > 0 ? owner : process.pid;
}

/** Unique across this process's threads and calls, so writers of the same target never share one. */
function tempPath(path: string): string {
  return `${tempPrefix(path)}${threadId}-${(serial++).toString(36)}-${randomBytes(4).toString('hex')}.tmp`;
}

function writeTemp(tmp: string, data: Uint8Array | string, signal: AbortSignal | undefined): void {
  const fd = openSync(tmp, 'wx');
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < bytes.length) {
      signal?.throwIfAborted();
      off += writeSync(fd, bytes, off, Math.min(bytes.length - off, 1 << 24));
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function appeared(path: string): BackdoorLensError {
  return new BackdoorLensError('usage', `${basename(path)} appeared while it was being written; not overwriting it`, { file: path });
}

/** Puts the temporary file in place; with `exclusive`, only where nothing is. */
function publish(tmp: string, path: string, exclusive: boolean): void {
  if (!exclusive) {
    renameSync(tmp, path);
    return;
  }
  try {
    linkSync(tmp, path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw appeared(path);
    // A file system without hard links: a check, then the rename.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw e;
    if (readdirSync(dirname(path)).includes(basename(path))) throw appeared(path);
    renameSync(tmp, path);
    return;
  }
  rmSync(tmp, { force: true });
}

/**
 * Refuses, with one line naming the path, an output that cannot be written: its folder is missing
 * or is not a folder, or the path itself is a folder. Call it before long work that ends in a write.
 */
export function checkOutputPath(path: string): void {
  const dir = dirname(resolve(path));
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new BackdoorLensError('usage', `cannot write ${path}: the folder ${dirname(path)} does not exist; create it first`, { file: path });
  }
  if (!st.isDirectory()) throw new BackdoorLensError('usage', `cannot write ${path}: ${dirname(path)} is not a folder`, { file: path });
  try {
    if (statSync(path).isDirectory()) throw new BackdoorLensError('usage', `cannot write ${path}: it is a folder; give a file name`, { file: path });
  } catch (e) {
    if (e instanceof BackdoorLensError) throw e;
  }
}

export function writeFileAtomic(path: string, data: Uint8Array | string, options: AtomicWriteOptions = {}): void {
  writeFilesAtomic([{ path, data }], options);
}

/**
 * Writes every file to its temporary first and only then puts them all in place, so a failure or
 * a cancellation while writing leaves none of them, and no temporary file either.
 */
export function writeFilesAtomic(files: { path: string; data: Uint8Array | string }[], options: AtomicWriteOptions = {}): void {
  for (const f of files) checkOutputPath(f.path);
  const temps: string[] = [];
  const published: string[] = [];
  try {
    for (const f of files) {
      const tmp = tempPath(f.path);
      temps.push(tmp);
      writeTemp(tmp, f.data, options.signal);
    }
    options.signal?.throwIfAborted();
    files.forEach((f, i) => {
      publish(temps[i], f.path, !!options.exclusive);
      published.push(f.path);
    });
  } catch (e) {
    for (const t of temps) rmSync(t, { force: true });
    // Files an exclusive write created are its own: take them back so the set is all or nothing.
    if (options.exclusive) for (const p of published) rmSync(p, { force: true });
    const errno = e as NodeJS.ErrnoException & { path?: string; syscall?: string };
    if (!(e instanceof BackdoorLensError) && typeof errno?.code === 'string' && typeof errno.syscall === 'string') throw fsError(errno, files[0]?.path);
    throw e;
  }
}

/**
 * Removes the temporary files this process left for a target: what a writer stopped midway (a
 * terminated worker thread) could not clean up itself. Returns the paths removed.
 */
export function removeTempFiles(path: string): string[] {
  const prefix = basename(tempPrefix(path));
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return [];
  }
  const removed = names.filter((n) => n.startsWith(prefix) && n.endsWith('.tmp')).map((n) => join(dirname(path), n));
  for (const p of removed) rmSync(p, { force: true });
  return removed;
}

/** Refuses to write over the input a fix read from. */
export function assertNotInput(output: string, inputs: string[]): void {
  const out = resolve(output);
  for (const i of inputs) {
    if (resolve(i) === out) throw new BackdoorLensError('usage', `refusing to overwrite the input ${i}: choose another --out`);
  }
}
