import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { GatehouseError, type GatehouseErrorCode } from '../errors.js';
import { openRegularFile, readChunks } from '../discover/untrusted-file.js';

export interface FileDigest {
  /** 64 lower-case hex digits. */
  sha256: string;
  /** Bytes hashed. */
  size: number;
}

/** The outcome for one file of {@link sha256Files}. */
export type FileHashResult = { path: string; ok: true; sha256: string; size: number } | { path: string; ok: false; error: GatehouseError };

/** What a hash worker is sent: paths to hash in order. */
export interface HashBatch {
  id: number;
  paths: readonly string[];
}
/** The digest of one file, or why it could not be hashed. */
export type HashOutcome = FileDigest | { code: GatehouseErrorCode; message: string };
/** What a hash worker sends back for one batch, an outcome per path in the same order. */
export interface HashBatchReply {
  id: number;
  outcomes: HashOutcome[];
}

/** Files the calling thread has in hand at once when it hashes alone, so that while it reads one it hashes another. */
const JOBS_PER_WORKER = 4;
/** Batches each thread has in hand at once, so that it never waits for the next one. */
const BATCHES_PER_WORKER = 2;
/** Enough files per message that messaging costs little next to hashing; few enough to share the work evenly. */
const MAX_BATCH_FILES = 64;

/**
 * SHA-256 of a regular file, streamed. A symbolic link in place of the file is refused (FILE_NOT_REGULAR),
 * so what is hashed is the file at that path and nothing it points to.
 */
export async function sha256File(file: string): Promise<FileDigest> {
  const opened = await openRegularFile(file);
  try {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of readChunks(opened)) {
      hash.update(chunk);
      size += chunk.length;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    await opened.handle.close();
  }
}

/**
 * SHA-256 of many files, one result per path in the same order; a file that cannot be hashed is a failed
 * result, not a thrown error. Hashing runs on up to `concurrency` threads (worker threads when more than
 * one), as node:crypto hashes on the thread that calls it.
 */
export async function sha256Files(paths: readonly string[], concurrency = availableParallelism()): Promise<FileHashResult[]> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new GatehouseError('INVALID_OPTIONS', `sha256Files: concurrency must be a positive integer, got ${concurrency}`);
  }
  const workerCount = Math.min(concurrency, paths.length);
  if (workerCount <= 1) {
    const results = new Array<FileHashResult>(paths.length);
    let next = 0;
    const lane = async (): Promise<void> => {
      for (let i = next++; i < paths.length; i = next++) results[i] = await settle(paths[i] ?? '');
    };
    await Promise.all(Array.from({ length: Math.min(JOBS_PER_WORKER, paths.length) }, lane));
    return results;
  }
  // Batches of consecutive paths, about eight per thread so that one slow file does not leave a thread idle.
  const batchSize = Math.max(1, Math.min(MAX_BATCH_FILES, Math.ceil(paths.length / (workerCount * 8))));
  const results = new Array<FileHashResult>(paths.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let start = next; start < paths.length; start = next) {
      next = start + batchSize;
      const batch = paths.slice(start, next);
      const outcomes = await hashOnPool(batch, workerCount);
      batch.forEach((path, i) => {
        const done = outcomes[i];
        results[start + i] =
          done === undefined
            ? { path, ok: false, error: new GatehouseError('FILE_UNREADABLE', `${path}: no hash result`) }
            : 'code' in done
              ? { path, ok: false, error: new GatehouseError(done.code, done.message) }
              : { path, ok: true, sha256: done.sha256, size: done.size };
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(workerCount * BATCHES_PER_WORKER, Math.ceil(paths.length / batchSize)) }, lane));
  return results;
}

/** A hash thread kept between calls (starting one costs ~23 ms), and the replies it owes. */
interface PoolWorker {
  worker: Worker;
  pending: Map<number, { files: number; resolve: (outcomes: HashOutcome[]) => void }>;
}

const pool: PoolWorker[] = [];
let nextJobId = 0;

/**
 * Hashes a batch of files on the least busy of `size` pooled threads. A thread holds the process open
 * only while it owes a reply, so an idle pool never keeps a host from exiting.
 */
function hashOnPool(paths: readonly string[], size: number): Promise<HashOutcome[]> {
  while (pool.length < size) pool.push(startWorker());
  const chosen = pool.slice(0, size).reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  const id = nextJobId++;
  return new Promise((resolve) => {
    chosen.pending.set(id, { files: paths.length, resolve });
    if (chosen.pending.size === 1) chosen.worker.ref();
    const batch: HashBatch = { id, paths };
    chosen.worker.postMessage(batch);
  });
}

function startWorker(): PoolWorker {
  const entry: PoolWorker = { worker: new Worker(new URL('./hash-worker.js', import.meta.url)), pending: new Map() };
  entry.worker.unref();
  entry.worker.on('message', (reply: HashBatchReply) => {
    entry.pending.get(reply.id)?.resolve(reply.outcomes);
    entry.pending.delete(reply.id);
    if (entry.pending.size === 0) entry.worker.unref();
  });
  const fail = (message: string): void => {
    const index = pool.indexOf(entry); // 'error' is followed by 'exit': the second call finds it gone
    if (index >= 0) pool.splice(index, 1);
    for (const { files, resolve } of entry.pending.values()) resolve(Array.from({ length: files }, () => ({ code: 'FILE_UNREADABLE' as const, message })));
    entry.pending.clear();
  };
  entry.worker.on('error', (error) => fail(`sha256Files: a hash thread failed: ${error.message}`));
  entry.worker.on('exit', () => fail('sha256Files: a hash thread stopped before finishing'));
  return entry;
}

async function settle(path: string): Promise<FileHashResult> {
  try {
    return { path, ok: true, ...(await sha256File(path)) };
  } catch (error) {
    if (!(error instanceof GatehouseError)) throw error;
    return { path, ok: false, error };
  }
}

/** The digest of a {@link sha256Files} result, or its error thrown. */
export function digestOf(result: FileHashResult | undefined): FileDigest {
  if (!result) throw new GatehouseError('FILE_UNREADABLE', 'no hash result for a file');
  if (!result.ok) throw result.error;
  return { sha256: result.sha256, size: result.size };
}
