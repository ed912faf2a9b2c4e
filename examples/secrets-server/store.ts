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
/** Compaction runs once the log is this large and more than twice the live data. */
const COMPACT_MIN_BYTES = 4 * 1024 * 1024;

interface Pending {
  line: Buffer;
  apply: () => void;
  resolve: () => void;
  reject: (error: Error) => void;
}

const checksum = (json: string): string => createHash('sha256').update(json).digest('hex').slice(0, 16);

function encode(key: string, value: Buffer | null): Buffer {
  const json = JSON.stringify({ k: key, v: value === null ? null : value.toString('base64') });
  return Buffer.from(`${checksum(json)} ${json}\n`);
}

export class LogStore {
  private readonly data = new Map<string, Buffer>();
  private queue: Pending[] = [];
  private writing: Promise<void> | undefined;
  private logBytes = 0;
  private liveBytes = 0;
  private failure: Error | undefined;

  private constructor(
    private readonly path: string,
    private handle: FileHandle,
  ) {}

  /** Opens (creating 0600) and replays the log; a torn last line from a crash is dropped, any other damage refused. */
  static async open(path: string): Promise<LogStore> {
    // O_NOFOLLOW: a symlink planted at the store's path must not redirect our writes.
    const handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
    const store = new LogStore(path, handle);
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

  /** Keys starting with `prefix`, sorted. */
  list(prefix: string): string[] {
    return [...this.data.keys()].filter((key) => key.startsWith(prefix)).sort();
  }

  /** Resolves once the write is on disk (fsynced). */
  async put(key: string, value: Buffer): Promise<void> {
    checkKey(key);
    if (value.length > MAX_VALUE_BYTES) throw new ServerError(413, 'value_too_large', `store: value of ${value.length} bytes, more than ${MAX_VALUE_BYTES}`);
    return this.append(encode(key, value), () => this.set(key, value));
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    if (!this.data.has(key)) return;
    return this.append(encode(key, null), () => this.set(key, null));
  }

  async close(): Promise<void> {
    await this.writing;
    await this.handle.close();
  }

  private set(key: string, value: Buffer | null): void {
    const old = this.data.get(key);
    if (old) this.liveBytes -= encode(key, old).length;
    if (value === null) this.data.delete(key);
    else {
      this.data.set(key, value);
      this.liveBytes += encode(key, value).length;
    }
  }

  private append(line: Buffer, apply: () => void): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ line, apply, resolve, reject });
      this.writing ??= this.drain().finally(() => (this.writing = undefined));
    });
  }

  /** Writes everything queued as one batch and one fsync, until the queue is empty (group commit). */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        const bytes = Buffer.concat(batch.map((pending) => pending.line));
        await this.handle.write(bytes);
        await this.handle.sync();
        this.logBytes += bytes.length;
        // Applied only once durable: a reader never sees a value a crash could take back.
        for (const pending of batch) pending.apply();
        for (const pending of batch) pending.resolve();
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

  private async replay(): Promise<void> {
    const text = (await this.handle.readFile()).toString('utf8');
    const lines = text.split('\n');
    const last = lines.pop(); // '' after a final newline; otherwise a line the crash cut
    let offset = 0;
    for (const [i, line] of lines.entries()) {
      const space = line.indexOf(' ');
      const json = line.slice(space + 1);
      if (space !== 16 || checksum(json) !== line.slice(0, 16)) {
        throw new ServerError(500, 'storage_damaged', `store ${this.path}: line ${i + 1} is damaged; restore it from a backup`);
      }
      const record = JSON.parse(json) as { k: string; v: string | null };
      this.set(record.k, record.v === null ? null : Buffer.from(record.v, 'base64'));
      offset += Buffer.byteLength(line) + 1;
    }
    if (last) {
      // A crash during an append: that write was never acknowledged, so dropping it loses nothing promised.
      await this.handle.truncate(offset);
    }
    this.logBytes = offset;
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
