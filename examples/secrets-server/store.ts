/**
 * The server's storage: an append-only log on disk, replayed into memory at open.
 *
 * Why a log: a write costs one append and one fsync (shared by every write that arrives meanwhile:
 * group commit), never a rewrite of the whole data set; a crash can only cut the last line, which the
 * checksum exposes and open() drops. When dead records outweigh live ones the log is compacted: the live
 * set is written to a new file, fsynced, and renamed over the old one (then the directory is fsynced),
 * so a crash at any point leaves either the old log or the new one. The data set of a secrets server is
 * small enough to hold in memory; an embedded B-tree (SQLite) would need a native dependency.
 *
 * Line format: `<first 16 hex of sha256(json)> <json>\n`, json = {"k": key, "v": base64 | null (deleted)}.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ServerError } from './errors.js';

export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 1024 * 1024;
/** The longest line encode() writes: checksum and JSON punctuation, a key escaped at worst to twice its size, the value in base64. */
const MAX_LINE_BYTES = 64 + 2 * MAX_KEY_BYTES + Math.ceil(MAX_VALUE_BYTES / 3) * 4;
/** Replay reads the log this much at a time. */
const READ_BYTES = 64 * 1024;
/** Compaction runs once the log is this large and more than twice the live data. */
const COMPACT_MIN_BYTES = 4 * 1024 * 1024;

interface Pending {
  key: string;
  /** null: a delete. */
  value: Buffer | null;
  /** A compare-and-put's condition: written only if the key's revision is still this (0: absent) when its turn comes. */
  revision: number | undefined;
  resolve: (written: boolean) => void;
  reject: (error: Error) => void;
}

const checksum = (json: string): string => createHash('sha256').update(json).digest('hex').slice(0, 16);

function encode(key: string, value: Buffer | null): Buffer {
  const json = JSON.stringify({ k: key, v: value === null ? null : value.toString('base64') });
  return Buffer.from(`${checksum(json)} ${json}\n`);
}

export interface StoreOptions {
  /**
   * The part of a key whose writes share one revision counter (a mount's prefix), by default one for all:
   * a counter shared by every mount let an engine count the writes of the others between two of its own.
   */
  revisionScope?: (key: string) => string;
}

export class LogStore {
  private readonly data = new Map<string, Buffer>();
  /** Each key's revision: the number of the write that set it, counted per scope from the open (0: absent). */
  private readonly revisions = new Map<string, number>();
  /** The last revision given in each scope. */
  private readonly lastRevisions = new Map<string, number>();
  private queue: Pending[] = [];
  private writing: Promise<void> | undefined;
  private logBytes = 0;
  private liveBytes = 0;
  private failure: Error | undefined;

  private constructor(
    private readonly path: string,
    private handle: FileHandle,
    private readonly revisionScope: (key: string) => string,
  ) {}

  /** Opens (creating 0600) and replays the log; a torn last line from a crash is dropped, any other damage refused. */
  static async open(path: string, options: StoreOptions = {}): Promise<LogStore> {
    // O_NOFOLLOW: a symlink planted at the store's path must not redirect our writes.
    const handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
    const store = new LogStore(path, handle, options.revisionScope ?? (() => ''));
    try {
      await store.replay();
    } catch (error) {
      await handle.close();
      throw error;
    }
    return store;
  }

  get(key: string): Buffer | undefined {
    return this.data.get(key);
  }

  /** Changes at every write of `key`, and never comes back within this run (counted in its scope); 0 while it is absent. */
  revision(key: string): number {
    return this.revisions.get(key) ?? 0;
  }

  /** Keys starting with `prefix`, sorted. */
  list(prefix: string): string[] {
    return [...this.data.keys()].filter((key) => key.startsWith(prefix)).sort();
  }

  /** How many keys start with `prefix`, and their bytes (keys and values). */
  usage(prefix: string): { keys: number; bytes: number } {
    let keys = 0;
    let bytes = 0;
    for (const [key, value] of this.data) {
      if (!key.startsWith(prefix)) continue;
      keys++;
      bytes += Buffer.byteLength(key) + value.length;
    }
    return { keys, bytes };
  }

  /** Resolves once the write is on disk (fsynced). */
  async put(key: string, value: Buffer): Promise<void> {
    await this.compareAndPut(key, value, undefined);
  }

  /**
   * Writes `value` only if the key's revision is still `revision` (0: only if absent) when the write's turn
   * comes, in log order; false, and nothing written, otherwise. Resolves once the write is on disk.
   * Lost update: two engine processes of one mount (the old and the new during a reload) each read
   * version N and wrote N+1; the second write now fails its condition and its engine reads again.
   */
  async compareAndPut(key: string, value: Buffer, revision: number | undefined): Promise<boolean> {
    checkKey(key);
    if (value.length > MAX_VALUE_BYTES) throw new ServerError(413, 'value_too_large', `store: value of ${value.length} bytes, more than ${MAX_VALUE_BYTES}`);
    return this.append(key, value, revision);
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    if (!this.data.has(key)) return;
    await this.append(key, null, undefined);
  }

  async close(): Promise<void> {
    await this.writing;
    await this.handle.close();
  }

  private set(key: string, value: Buffer | null): void {
    const old = this.data.get(key);
    if (old) this.liveBytes -= encode(key, old).length;
    if (value === null) {
      this.data.delete(key);
      this.revisions.delete(key);
    } else {
      this.data.set(key, value);
      const scope = this.revisionScope(key);
      const revision = (this.lastRevisions.get(scope) ?? 0) + 1;
      this.lastRevisions.set(scope, revision);
      this.revisions.set(key, revision);
      this.liveBytes += encode(key, value).length;
    }
  }

  private append(key: string, value: Buffer | null, revision: number | undefined): Promise<boolean> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ key, value, revision, resolve, reject });
      this.writing ??= this.drain().finally(() => (this.writing = undefined));
    });
  }

  /** Writes everything queued as one batch and one fsync, until the queue is empty (group commit). */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        // Conditions are decided in log order: against what is applied, and the writes before in this batch.
        const written = new Set<string>();
        const kept = new Set(
          batch.filter((pending) => {
            const holds = pending.revision === undefined || (!written.has(pending.key) && pending.revision === this.revision(pending.key));
            if (holds) written.add(pending.key);
            return holds;
          }),
        );
        const bytes = Buffer.concat([...kept].map((pending) => encode(pending.key, pending.value)));
        await this.handle.write(bytes);
        await this.handle.sync();
        this.logBytes += bytes.length;
        // Applied only once durable: a reader never sees a value a crash could take back.
        for (const pending of kept) this.set(pending.key, pending.value);
        for (const pending of batch) pending.resolve(kept.has(pending));
        if (this.logBytes > COMPACT_MIN_BYTES && this.logBytes > 2 * this.liveBytes) await this.compact();
      } catch (cause) {
        // After a failed write the file's end is unknown: refuse everything rather than guess.
        this.failure = new ServerError(500, 'storage_failed', `store ${this.path}: write failed, restart the server: ${(cause as Error).message}`, { cause });
        for (const pending of [...batch, ...this.queue.splice(0)]) pending.reject(this.failure);
        return;
      }
    }
  }

  private async compact(): Promise<void> {
    const next = `${this.path}.compact`;
    const handle = await open(next, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    let bytes = 0;
    try {
      const lines = [...this.data].map(([key, value]) => encode(key, value));
      const all = Buffer.concat(lines);
      await handle.write(all);
      await handle.sync();
      bytes = all.length;
    } finally {
      await handle.close();
    }
    await rename(next, this.path);
    await syncDirectory(this.path);
    await this.handle.close();
    this.handle = await open(this.path, constants.O_RDWR | constants.O_APPEND | constants.O_NOFOLLOW);
    this.logBytes = bytes;
  }

  /**
   * Reads the log a block at a time and applies it line by line. The whole log read as one string once
   * made a store past ~512 MiB (V8's longest string) impossible to open, so the server could not restart.
   */
  private async replay(): Promise<void> {
    const block = Buffer.alloc(READ_BYTES);
    let line: Buffer[] = []; // the line being read, in parts (copies: the block is reused)
    let lineBytes = 0;
    let lineNumber = 1;
    let offset = 0; // the end of the last whole line
    const damaged = () => new ServerError(500, 'storage_damaged', `store ${this.path}: line ${lineNumber} is damaged; restore it from a backup`);
    const take = (part: Buffer) => {
      lineBytes += part.length;
      // A line longer than any record is damage: refused before it is held whole, so a corrupt or planted log cannot exhaust memory.
      if (lineBytes > MAX_LINE_BYTES) throw damaged();
      line.push(Buffer.from(part));
    };
    for (let read = await this.handle.read(block, 0, READ_BYTES, 0); read.bytesRead > 0; read = await this.handle.read(block, 0, READ_BYTES, offset + lineBytes)) {
      const data = block.subarray(0, read.bytesRead);
      let start = 0;
      for (let newline = data.indexOf(0x0a); newline !== -1; newline = data.indexOf(0x0a, start)) {
        take(data.subarray(start, newline));
        if (!this.apply(Buffer.concat(line).toString('utf8'))) throw damaged();
        offset += lineBytes + 1;
        line = [];
        lineBytes = 0;
        lineNumber++;
        start = newline + 1;
      }
      take(data.subarray(start));
    }
    if (lineBytes > 0) {
      // A crash during an append: that write was never acknowledged, so dropping it loses nothing promised.
      await this.handle.truncate(offset);
    }
    this.logBytes = offset;
  }

  /** Applies one line of the log; false if its checksum does not hold. */
  private apply(line: string): boolean {
    const space = line.indexOf(' ');
    const json = line.slice(space + 1);
    if (space !== 16 || checksum(json) !== line.slice(0, 16)) return false;
    const record = JSON.parse(json) as { k: string; v: string | null };
    this.set(record.k, record.v === null ? null : Buffer.from(record.v, 'base64'));
    return true;
  }
}

function checkKey(key: string): void {
  // eslint-disable-next-line no-control-regex -- control characters in keys are what is refused
  if (key === '' || Buffer.byteLength(key) > MAX_KEY_BYTES || /[\u0000-\u001f\u007f]/.test(key)) {
    throw new ServerError(400, 'invalid_key', `store: a key must be 1 to ${MAX_KEY_BYTES} bytes without control characters`);
  }
}

async function syncDirectory(path: string): Promise<void> {
  const directory = await open(dirname(path), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
