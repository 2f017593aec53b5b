/**
 * A bounded reader for zip archives (.npz files, torch.save checkpoints). Every offset and size
 * is checked against the file before use, inflated sizes are capped, and stored entries are
 * returned as views, so a hostile archive cannot make us read out of bounds or allocate without limit.
 */
import { inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
  /** Offset of the entry's data (after the local header) in the archive. */
  dataOffset: number;
  localHeaderOffset: number;
}

export interface ZipLimits {
  /** Largest uncompressed entry we agree to produce. */
  maxEntryBytes?: number;
  /** Most entries an archive may list. */
  maxEntries?: number;
  /**
   * Record structural anomalies (see ZipAnomaly) in `anomalies` instead of throwing on the first.
   * Scanners want the list: each anomaly is a way to show one reader different data than another.
   */
  collectAnomalies?: boolean;
  /**
   * Match entry names without regard to case, as torch.load's zip reader (miniz, no case flag)
   * does: 'archive/DATA.PKL' is then the same entry as 'archive/data.pkl', and both together are a duplicate.
   */
  caseInsensitive?: boolean;
}

/**
 * A structure that readers resolve differently, so that a scanner and a loader can see different
 * content in the same file: two entries with one name (which one wins depends on the reader), entries
 * whose bytes overlap, or a local header whose name differs from the central directory's.
 */
export interface ZipAnomaly {
  /** torchscript and trailing-data come from the torch reader: members torch.load treats differently from us. */
  kind: 'duplicate-name' | 'overlap' | 'name-mismatch' | 'torchscript' | 'trailing-data';
  /** The entry names involved. */
  names: string[];
  message: string;
}

export class ZipError extends Error {}

const EOCD = 0x06054b50, EOCD64 = 0x06064b50, EOCD64_LOCATOR = 0x07064b50, CENTRAL = 0x02014b50, LOCAL = 0x04034b50;

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5) && (bytes[3] === 4 || bytes[3] === 6);
}

export class ZipArchive {
  readonly entries: Map<string, ZipEntry>;
  /** Entries in central-directory order (duplicates included), as a loader walking the directory sees them. */
  readonly records: ZipEntry[] = [];
  readonly anomalies: ZipAnomaly[] = [];
  private readonly view: DataView;
  private readonly maxEntryBytes: number;
  private readonly collect: boolean;
  private readonly caseInsensitive: boolean;

  constructor(readonly bytes: Uint8Array, limits: ZipLimits = {}) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // Deflate reaches ~1000:1 at best; a real .npz or checkpoint stays far below this bound.
    this.maxEntryBytes = limits.maxEntryBytes ?? 16 * bytes.length + 256 * 2 ** 20;
    this.collect = limits.collectAnomalies ?? false;
    this.caseInsensitive = limits.caseInsensitive ?? false;
    this.entries = this.readCentralDirectory(limits.maxEntries ?? 100_000);
    this.checkOverlaps();
  }

  private anomaly(a: ZipAnomaly): void {
    if (!this.collect) throw new ZipError(a.message);
    this.anomalies.push(a);
  }

  /** Entries must not share bytes: overlapping entries let two names (or two readers) see one payload differently. */
  private checkOverlaps(): void {
    const sorted = [...this.records].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1], cur = sorted[i];
      const prevEnd = prev.dataOffset + prev.compressedSize;
      if (cur.localHeaderOffset < prevEnd) {
        this.anomaly({
          kind: 'overlap',
          names: [prev.name, cur.name],
          message: `zip entries '${prev.name}' (bytes ${prev.localHeaderOffset}..${prevEnd}) and '${cur.name}' (from byte ${cur.localHeaderOffset}) overlap`,
        });
      }
    }
  }

  private u16(at: number): number {
    this.need(at, 2);
    return this.view.getUint16(at, true);
  }
  private u32(at: number): number {
    this.need(at, 4);
    return this.view.getUint32(at, true);
  }
  private u64(at: number): number {
    this.need(at, 8);
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(`a zip64 field holds ${v}, beyond any real file`);
    return Number(v);
  }
  private need(at: number, n: number): void {
    if (at < 0 || at + n > this.bytes.length) throw new ZipError(`the zip is truncated: a record at byte ${at} runs past the end of the file (${this.bytes.length} bytes)`);
  }

  private readCentralDirectory(maxEntries: number): Map<string, ZipEntry> {
    const len = this.bytes.length;
    let eocd = -1;
    for (let i = len - 22; i >= Math.max(0, len - 22 - 0xffff); i--) {
      if (this.view.getUint32(i, true) === EOCD) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new ZipError('no end-of-central-directory record: the zip is truncated or not a zip');
    let count = this.u16(eocd + 10);
    let cdSize = this.u32(eocd + 12);
    let cdOffset = this.u32(eocd + 16);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || this.u32(loc) !== EOCD64_LOCATOR) throw new ZipError('zip64 end-of-central-directory locator is missing');
      const at = this.u64(loc + 8);
      if (this.u32(at) !== EOCD64) throw new ZipError('zip64 end-of-central-directory record is missing');
      count = this.u64(at + 32);
      cdSize = this.u64(at + 40);
      cdOffset = this.u64(at + 48);
    }
    if (count > maxEntries) throw new ZipError(`the zip lists ${count} entries, more than the limit of ${maxEntries}`);
    if (cdOffset + cdSize > len) throw new ZipError(`the zip's central directory (${cdSize} bytes at ${cdOffset}) runs past the end of the file (${len} bytes): the file is truncated`);
    const entries = new Map<string, ZipEntry>();
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (this.u32(p) !== CENTRAL) throw new ZipError(`central directory entry ${i} at byte ${p} is corrupt`);
      const method = this.u16(p + 10);
      const crc32 = this.u32(p + 16);
      let compressedSize = this.u32(p + 20);
      let uncompressedSize = this.u32(p + 24);
      const nameLen = this.u16(p + 28), extraLen = this.u16(p + 30), commentLen = this.u16(p + 32);
      let localHeaderOffset = this.u32(p + 42);
      this.need(p + 46, nameLen + extraLen);
      const name = Buffer.from(this.bytes.subarray(p + 46, p + 46 + nameLen)).toString('utf8');
      // zip64 extra field: sizes and offset that overflowed 32 bits, in this order.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = this.u16(e), size = this.u16(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (uncompressedSize === 0xffffffff) (uncompressedSize = this.u64(q)), (q += 8);
          if (compressedSize === 0xffffffff) (compressedSize = this.u64(q)), (q += 8);
          if (localHeaderOffset === 0xffffffff) (localHeaderOffset = this.u64(q)), (q += 8);
        }
        e += 4 + size;
      }
      if (this.u32(localHeaderOffset) !== LOCAL) throw new ZipError(`entry '${name}' points to a missing local header at byte ${localHeaderOffset}`);
      const localNameLen = this.u16(localHeaderOffset + 26);
      const dataOffset = localHeaderOffset + 30 + localNameLen + this.u16(localHeaderOffset + 28);
      if (dataOffset + compressedSize > len) {
        throw new ZipError(`entry '${name}' declares ${compressedSize} bytes at byte ${dataOffset}, past the end of the file (${len} bytes): the zip is truncated`);
      }
      const localName = Buffer.from(this.bytes.subarray(localHeaderOffset + 30, localHeaderOffset + 30 + localNameLen)).toString('utf8');
      if (localName !== name) {
        this.anomaly({ kind: 'name-mismatch', names: [name, localName], message: `zip entry '${name}' has a local header named '${localName}'` });
      }
      const entry: ZipEntry = { name, method, compressedSize, uncompressedSize, crc32, dataOffset, localHeaderOffset };
      this.records.push(entry);
      const known = entries.get(this.key(name));
      if (known) {
        const names = known.name === name ? [name] : [known.name, name];
        this.anomaly({ kind: 'duplicate-name', names, message: known.name === name ? `the zip has two entries named '${name}'` : `the zip has entries '${known.name}' and '${name}', one name to a reader that ignores case (torch.load does)` });
      } else entries.set(this.key(name), entry);
      p += 46 + nameLen + extraLen + commentLen;
    }
    return entries;
  }

  private key(name: string): string {
    return this.caseInsensitive ? name.toLowerCase() : name;
  }

  names(): string[] {
    return [...this.entries.values()].map((e) => e.name);
  }

  has(name: string): boolean {
    return this.entries.has(this.key(name));
  }

  /** The entry's name as the archive spells it (its case may differ from `name`'s when matching ignores case). */
  nameOf(name: string): string | undefined {
    return this.entries.get(this.key(name))?.name;
  }

  /** The entry's bytes: a view for stored entries, a bounded inflate for deflated ones. */
  read(name: string): Uint8Array {
    const entry = this.entries.get(this.key(name));
    if (!entry) throw new ZipError(`the zip has no entry '${name}'`);
    return this.readEntry(entry);
  }

  /** The bytes of one central-directory record (duplicates included: see `records`). */
  readEntry(entry: ZipEntry): Uint8Array {
    const name = entry.name;
    const raw = this.bytes.subarray(entry.dataOffset, entry.dataOffset + entry.compressedSize);
    if (entry.method === 0) {
      if (entry.uncompressedSize !== entry.compressedSize) throw new ZipError(`stored entry '${name}' declares ${entry.uncompressedSize} bytes but holds ${entry.compressedSize}`);
      return raw;
    }
    if (entry.method !== 8) throw new ZipError(`entry '${name}' uses compression method ${entry.method}; only stored and deflate are supported`);
    if (entry.uncompressedSize > this.maxEntryBytes) {
      throw new ZipError(`entry '${name}' declares ${entry.uncompressedSize} uncompressed bytes, over the limit of ${this.maxEntryBytes}`);
    }
    let out: Buffer;
    try {
      out = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (e) {
      throw new ZipError(`entry '${name}' does not inflate to its declared ${entry.uncompressedSize} bytes: ${(e as Error).message}`);
    }
    if (out.length !== entry.uncompressedSize) throw new ZipError(`entry '${name}' inflates to ${out.length} bytes, not the declared ${entry.uncompressedSize}`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }
}
