/**
 * The stdio transport's framing, checked before vscode-jsonrpc sees it.
 *
 * vscode-jsonrpc's stream reader takes `Content-Length: -5` as a length of -5 and a huge length as
 * a promise of that many bytes, and from then on never delivers another message: the server stays
 * alive but answers nothing. A stream of JSON-RPC messages cannot be resynchronised after a bad
 * header, so this transform passes well-formed messages through and, at the first malformed header,
 * reports it once and ends the input: the connection closes and the server exits cleanly.
 */
import { Transform, type TransformCallback } from 'node:stream';

/** Largest message body accepted (a scan request is a few hundred bytes; settings a few KiB). */
export const maxMessageBytes = 64 * 2 ** 20;
/** Largest header block: a couple of short lines in practice. */
const maxHeaderBytes = 8192;

export class FramedInput extends Transform {
  private pending: Buffer = Buffer.alloc(0);
  /** Body bytes still to pass through for the current message; -1 while reading a header. */
  private bodyLeft = -1;
  private broken = false;

  constructor(private readonly onMalformed: (reason: string) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.broken) return done();
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      if (this.bodyLeft >= 0) {
        const n = Math.min(this.bodyLeft, this.pending.length);
        if (n > 0) this.push(this.pending.subarray(0, n));
        this.pending = this.pending.subarray(n);
        this.bodyLeft -= n;
        if (this.bodyLeft > 0) return done();
        this.bodyLeft = -1;
      }
      const end = this.pending.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.pending.length > maxHeaderBytes) return this.fail(`a header block longer than ${maxHeaderBytes} bytes`, done);
        return done();
      }
      const header = this.pending.subarray(0, end).toString('ascii');
      const length = contentLength(header);
      if (typeof length === 'string') return this.fail(length, done);
      this.push(this.pending.subarray(0, end + 4));
      this.pending = this.pending.subarray(end + 4);
      this.bodyLeft = length;
    }
  }

  private fail(reason: string, done: TransformCallback): void {
    this.broken = true;
    this.pending = Buffer.alloc(0);
    this.onMalformed(reason);
    this.push(null);
    done();
  }
}

/** The Content-Length of a header block, or why it is malformed. */
function contentLength(header: string): number | string {
  let length: number | undefined;
  for (const line of header.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) return `a header line without a name: '${line.slice(0, 60)}'`;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name !== 'content-length') continue;
    if (!/^\d{1,12}$/.test(value)) return `Content-Length '${value.slice(0, 40)}' is not a byte count`;
    length = Number(value);
    if (length > maxMessageBytes) return `Content-Length ${length} is over the ${maxMessageBytes}-byte limit of a message`;
  }
  return length ?? 'a header without Content-Length';
}
