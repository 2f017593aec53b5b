/**
 * Reading input files: regular files only, each read bounded by the file's own size.
 *
 * `stat` says 0 bytes for a device and a FIFO blocks its reader forever, so a model or data path
 * that is (or links to) /dev/zero, a FIFO or a socket would grow without bound or hang. Every input
 * is opened non-blocking, checked with fstat on the open descriptor (what we read is what we
 * checked, even if the path is swapped meanwhile) and read for at most the size fstat reported.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { BackdoorLensError, type ErrorCode } from '../errors';

export interface ReadOptions {
  /** The error code for a path that is missing or not a regular file: bad-file (models) or bad-data (data sets). */
  code?: ErrorCode;
  /** What the file is for, in messages ("model", "data set"). */
  what?: string;
  /** Called with the file's size before any byte is read: throw there to refuse it (a size limit). */
  checkSize?(size: number): void;
}

/** What a non-regular file is, for the message. */
export function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/** A one-line message for a failed open/read (ENOENT, EACCES, …), never Node's raw text. */
export function fsErrorMessage(e: unknown, action = 'read'): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOENT': return 'no such file';
    case 'ENOTDIR': return 'a part of the path is not a folder';
    case 'EACCES': case 'EPERM': return `permission denied: cannot ${action} it`;
    case 'EISDIR': return 'is a folder, not a file';
    case 'ELOOP': return 'the path is a loop of symbolic links';
    case 'ENAMETOOLONG': return 'the path is too long';
    case 'EMFILE': case 'ENFILE': return `cannot ${action} it: too many open files`;
    case 'ENOSPC': return `cannot ${action} it: no space left on the device`;
    case 'EROFS': return `cannot ${action} it: the file system is read-only`;
    case 'EXDEV': return `cannot ${action} it across file systems`;
    case 'EIO': return `cannot ${action} it: input/output error`;
    case 'ENXIO': return 'is a socket (or a device with nothing behind it), not a regular file; Backdoor Lens reads regular files only';
    default: return `cannot ${action} it${code ? ` (${code})` : ''}`;
  }
}

/** An open regular file: its descriptor and fstat size. Close it with closeSync. */
export function openRegular(path: string, options: ReadOptions = {}): { fd: number; size: number } {
  const code = options.code ?? 'bad-file';
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new BackdoorLensError(code, fsErrorMessage(e), { file: path, cause: e });
  }
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch (e) {
    closeSync(fd);
    throw new BackdoorLensError(code, fsErrorMessage(e), { file: path, cause: e });
  }
  if (!st.isFile()) {
    closeSync(fd);
    const what = options.what ?? 'file';
    throw new BackdoorLensError(st.isDirectory() ? code : 'bad-file', `is ${kindOf(st)}, not a regular ${what} file; Backdoor Lens reads regular files only`, { file: path });
  }
  try {
    options.checkSize?.(st.size);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return { fd, size: st.size };
}

/** Up to `length` bytes at `position` of an open file; fewer only if the file shrank. */
export function readFdRange(path: string, fd: number, position: number, length: number, code: ErrorCode): Buffer {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    let n: number;
    try {
      n = readSync(fd, buf, got, length - got, position + got);
    } catch (e) {
      throw new BackdoorLensError(code, fsErrorMessage(e), { file: path, cause: e });
    }
    if (n === 0) break; // the file shrank while we read: return what is there
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** The whole of a regular file, at most the size it had when opened. */
export function readRegularFile(path: string, options: ReadOptions = {}): Buffer {
  const { fd, size } = openRegular(path, options);
  try {
    return readFdRange(path, fd, 0, size, options.code ?? 'bad-file');
  } finally {
    closeSync(fd);
  }
}

/** Up to `length` bytes at `position` of a regular file, never past its end. */
export function readRegularRange(path: string, position: number, length: number, options: ReadOptions = {}): Buffer {
  const { fd, size } = openRegular(path, options);
  try {
    const n = Math.max(0, Math.min(length, size - position));
    return readFdRange(path, fd, position, n, options.code ?? 'bad-file');
  } finally {
    closeSync(fd);
  }
}

/** The first `n` bytes of a regular file (format sniffing). */
export function readHead(path: string, n = 64, options: ReadOptions = {}): Buffer {
  return readRegularRange(path, 0, n, options);
}

/** The size of a regular file, refusing anything else with the same errors as a read. */
export function regularFileSize(path: string, options: ReadOptions = {}): number {
  const { fd, size } = openRegular(path, options);
  closeSync(fd);
  return size;
}
