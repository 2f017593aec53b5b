/**
 * Errors as values with a code a front end can map to an exit code or a diagnostic,
 * and a message a user can act on. Front ends only format them; they never show a stack.
 */
export type ErrorCode =
  /** The file is not readable as what it claims to be (truncated, corrupt, wrong type). */
  | 'bad-file'
  /** The data set does not fit the model or is malformed. */
  | 'bad-data'
  /** The file is readable but holds no model this tool supports. */
  | 'unsupported-model'
  /** The command line or configuration asks for something impossible. */
  | 'usage'
  /** A configured limit (size, elements, time, memory) stopped the work. */
  | 'limit'
  /** The user cancelled. */
  | 'cancelled'
  /** A bug in Backdoor Lens. */
  | 'internal';

export class BackdoorLensError extends Error {
  readonly code: ErrorCode;
  /** The file the problem is in, when there is one. */
  readonly file?: string;

  constructor(code: ErrorCode, message: string, options: { file?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BackdoorLensError';
    this.code = code;
    this.file = options.file;
  }

  /** One line for a terminal or a diagnostic: `file: message`. */
  get userMessage(): string {
    return this.file && !this.message.includes(this.file) ? `${this.file}: ${this.message}` : this.message;
  }
}

export function badFile(file: string, message: string, cause?: unknown): BackdoorLensError {
  return new BackdoorLensError('bad-file', message, { file, cause });
}

export function badData(file: string | undefined, message: string, cause?: unknown): BackdoorLensError {
  return new BackdoorLensError('bad-data', message, { file, cause });
}

export function usageError(message: string): BackdoorLensError {
  return new BackdoorLensError('usage', message);
}

export function isBackdoorLensError(e: unknown): e is BackdoorLensError {
  return e instanceof BackdoorLensError;
}

/** A Node file-system error (ENOENT, EISDIR, …): it carries an errno code and the path it was about. */
function isFsError(e: unknown): e is NodeJS.ErrnoException & { path?: string; syscall?: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

/** Plain words for the errno codes a user can cause with a path. */
const fsWords: Record<string, string> = {
  ENOENT: 'no such file or folder',
  ENOTDIR: 'a part of the path is not a folder',
  EISDIR: 'is a folder, not a file',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'already exists',
  ENOSPC: 'no space left on the device',
  EROFS: 'the file system is read-only',
  ELOOP: 'the path is a loop of symbolic links',
  ENAMETOOLONG: 'the path is too long',
  EMFILE: 'too many open files',
  EXDEV: 'cannot move a file across file systems',
  EBUSY: 'the file is busy',
};

/** One line for a failed file-system call, naming the path: "cannot write out/x.onnx: no such file or folder". */
export function fsError(e: NodeJS.ErrnoException & { path?: string; syscall?: string }, file?: string): BackdoorLensError {
  const path = e.path ?? file;
  const verb = /^(open|read|stat|lstat|fstat|scandir|readlink|realpath)/.test(e.syscall ?? '') ? 'read' : 'write';
  const words = fsWords[e.code ?? ''] ?? `${e.code}`;
  const code: ErrorCode = e.code === 'ENOENT' || e.code === 'ENOTDIR' || e.code === 'EISDIR' || e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EEXIST' ? 'usage' : 'bad-file';
  return new BackdoorLensError(code, `cannot ${verb} ${path ?? 'a file'}: ${words}`, { file: path, cause: e });
}

/** Wraps anything thrown into a BackdoorLensError, keeping ours as they are. */
export function asBackdoorLensError(e: unknown, file?: string): BackdoorLensError {
  if (e instanceof BackdoorLensError) return e;
  if (e instanceof Error && e.name === 'AbortError') return new BackdoorLensError('cancelled', 'cancelled', { file });
  if (isFsError(e)) return fsError(e, file);
  const message = (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 200);
  return new BackdoorLensError('internal', `internal error: ${message}`, { file, cause: e });
}
