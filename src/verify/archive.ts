import { gunzipSync, gzipSync } from 'node:zlib';
import { GatehouseError } from '../errors.js';
import { relativePath } from './manifest.js';

/** One file of a release archive: a normalised relative path, its bytes, and whether it is executable. */
export interface ArchiveFile {
  path: string;
  data: Uint8Array;
  executable: boolean;
}

export interface ArchiveLimits {
  /** Bytes after decompression (default 256 MiB): a gzip bomb stops here, not at the end of memory. */
  maxBytes?: number;
  /** Entries, directories included (default 20,000). */
  maxEntries?: number;
}

const BLOCK = 512;
const DEFAULTS = { maxBytes: 256 * 1024 * 1024, maxEntries: 20_000 };
const MAGIC = 'ustar\u000000';

/**
 * A reproducible `.tar.gz`: POSIX ustar, files sorted by path, owner 0:0, mtime 0, mode 0644 or 0755, no
 * directory entries (they are implied), gzip without a name or time. The same files give the same bytes.
 */
export function writeArchive(files: readonly ArchiveFile[]): Buffer {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const blocks: Buffer[] = [];
  for (const file of sorted) {
    blocks.push(header(relativePath(file.path, `archive ${file.path}`), file.data.byteLength, file.executable ? 0o755 : 0o644));
    blocks.push(Buffer.from(file.data), Buffer.alloc((BLOCK - (file.data.byteLength % BLOCK)) % BLOCK));
  }
  blocks.push(Buffer.alloc(2 * BLOCK));
  return gzipSync(Buffer.concat(blocks), { level: 9 });
}

/**
 * Reads a `.tar.gz` from an untrusted source, strictly: POSIX ustar only, regular files and directories
 * only (links, devices, FIFOs, pax and GNU extensions are ARCHIVE_INVALID), every path normalised and
 * relative (no `..`, no absolute path), no path twice, no file that is also another's directory,
 * checksums right, sizes and counts within limits (ARCHIVE_TOO_LARGE). Nothing is written: the caller
 * gets the files or an error.
 */
export function readArchive(gz: Uint8Array, limits: ArchiveLimits = {}): ArchiveFile[] {
  const maxBytes = limits.maxBytes ?? DEFAULTS.maxBytes;
  const maxEntries = limits.maxEntries ?? DEFAULTS.maxEntries;
  let tar: Buffer;
  try {
    // maxOutputLength: decompression stops at the cap instead of inflating a bomb into memory.
    tar = gunzipSync(gz, { maxOutputLength: maxBytes + 2 * BLOCK });
  } catch (error) {
    const tooLarge = error instanceof RangeError || (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    throw tooLarge
      ? new GatehouseError('ARCHIVE_TOO_LARGE', `archive: more than ${maxBytes} bytes once decompressed`, { cause: error })
      : new GatehouseError('ARCHIVE_INVALID', `archive: not gzip data (${(error as Error).message})`, { cause: error });
  }
  const files: ArchiveFile[] = [];
  const seen = new Set<string>();
  let offset = 0;
  let entries = 0;
  for (;;) {
    if (offset + BLOCK > tar.length) throw invalid(offset, 'ends without the two zero blocks that close a tar archive');
    const block = tar.subarray(offset, offset + BLOCK);
    if (block.every((byte) => byte === 0)) {
      // Bytes after the end marker would be a second archive some readers see and others do not.
      if (!tar.subarray(offset).every((byte) => byte === 0)) throw invalid(offset, 'has data after its end');
      if (tar.length - offset < 2 * BLOCK) throw invalid(offset, 'ends with one zero block instead of two');
      refuseFileParents(files);
      return files;
    }
    entries += 1;
    if (entries > maxEntries) throw new GatehouseError('ARCHIVE_TOO_LARGE', `archive: more than ${maxEntries} entries`);
    const entry = parseHeader(block, offset);
    offset += BLOCK;
    if (entry.type === 'directory') {
      if (entry.size !== 0) throw invalid(offset, `directory ${entry.path} has a size`);
      continue;
    }
    if (offset + entry.size > tar.length) throw invalid(offset, `${entry.path} is cut short`);
    // One path twice: which copy wins differs between extractors, so the signed one might not.
    if (seen.has(entry.path)) throw invalid(offset, `${entry.path} appears twice`);
    seen.add(entry.path);
    files.push({ path: entry.path, data: tar.subarray(offset, offset + entry.size), executable: (entry.mode & 0o100) !== 0 });
    offset += Math.ceil(entry.size / BLOCK) * BLOCK;
  }
}

/** A file `a` with a file `a/b`: extracting both fails half-way, or writes `b` wherever `a` leads. */
function refuseFileParents(files: readonly ArchiveFile[]): void {
  const paths = new Set(files.map((file) => file.path));
  for (const file of files) {
    for (let cut = file.path.indexOf('/'); cut !== -1; cut = file.path.indexOf('/', cut + 1)) {
      const parent = file.path.slice(0, cut);
      if (paths.has(parent)) throw new GatehouseError('ARCHIVE_INVALID', `archive: ${parent} is both a file and a directory (of ${file.path}); the release must be packed again`);
    }
  }
}

function header(path: string, size: number, mode: number): Buffer {
  const block = Buffer.alloc(BLOCK);
  let name = path;
  let prefix = '';
  if (Buffer.byteLength(path) > 100) {
    const cut = path.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(path.slice(cut + 1)) > 100 || Buffer.byteLength(path.slice(0, cut)) > 155) {
      throw new GatehouseError('ARCHIVE_INVALID', `archive: ${path} is too long for a ustar header`);
    }
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  block.write(name, 0, 100, 'utf8');
  block.write(octal(mode, 7), 100);
  block.write(octal(0, 7), 108);
  block.write(octal(0, 7), 116);
  block.write(octal(size, 11), 124);
  block.write(octal(0, 11), 136);
  block.write('        ', 148);
  block.write('0', 156);
  block.write(MAGIC, 257, 'latin1');
  block.write(prefix, 345, 155, 'utf8');
  block.write(`${octal(checksum(block), 6)} `, 148, 'latin1');
  return block;
}

function parseHeader(block: Buffer, offset: number): { path: string; size: number; mode: number; type: 'file' | 'directory' } {
  if (block.toString('latin1', 257, 265) !== MAGIC) throw invalid(offset, 'is not a POSIX ustar header (GNU and v7 tar formats are refused)');
  const stored = number(block, 148, 8, offset, 'checksum');
  if (stored !== checksum(block)) throw invalid(offset, 'header checksum does not match');
  const flag = block.toString('latin1', 156, 157);
  // Links, devices and FIFOs could point outside the install or block it; extensions could rename entries.
  const type = flag === '0' || flag === '\0' ? 'file' : flag === '5' ? 'directory' : undefined;
  const name = text(block, 0, 100, offset);
  const prefix = text(block, 345, 155, offset);
  const raw = prefix === '' ? name : `${prefix}/${name}`;
  if (type === undefined) throw invalid(offset, `${JSON.stringify(raw)} is of type ${JSON.stringify(flag)}: only regular files and directories are allowed`);
  const path = type === 'directory' ? raw.replace(/\/$/, '') : raw;
  try {
    relativePath(path, 'path');
  } catch {
    throw invalid(offset, `entry name ${JSON.stringify(raw.slice(0, 200))} is absolute, climbs out with "..", or is not normalised`);
  }
  return { path, size: number(block, 124, 12, offset, 'size'), mode: number(block, 100, 8, offset, 'mode'), type };
}

function text(block: Buffer, start: number, length: number, offset: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  const bytes = end === -1 ? field : field.subarray(0, end);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw invalid(offset, 'has a name that is not UTF-8');
  }
}

function number(block: Buffer, start: number, length: number, offset: number, what: string): number {
  const field = block.toString('latin1', start, start + length);
  const match = /^ *([0-7]{1,12})[ \0]*$/.exec(field);
  // Base-256 sizes and other encodings are refused: one value, one spelling.
  if (!match?.[1]) throw invalid(offset, `${what} field is not octal`);
  const value = parseInt(match[1], 8);
  if (!Number.isSafeInteger(value)) throw invalid(offset, `${what} is out of range`);
  return value;
}

function checksum(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i += 1) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum;
}

function octal(value: number, digits: number): string {
  return `${value.toString(8).padStart(digits, '0')}\0`;
}

function invalid(offset: number, problem: string): GatehouseError {
  return new GatehouseError('ARCHIVE_INVALID', `archive: entry at byte ${offset} ${problem}`);
}
