import { createHash } from 'node:crypto';
import { closeSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { GatehouseError } from '../errors.js';
import type { FileDigest, HashBatch, HashBatchReply, HashOutcome } from './hash.js';
import { openRegularFileSync } from '../discover/untrusted-file.js';

const CHUNK_BYTES = 1 << 20;
const chunk = Buffer.allocUnsafe(CHUNK_BYTES);

/**
 * Reads synchronously on this worker's own thread: asynchronous reads go through libuv's shared
 * thread pool and compete with the hashing threads for the cores (measured: two files on two cores
 * scaled 1.43x that way). The open is the shared one, with its O_NOFOLLOW and regular-file checks.
 */
function sha256OnThisThread(path: string): FileDigest {
  const { fd } = openRegularFileSync(path);
  try {
    const hash = createHash('sha256');
    let size = 0;
    for (let read = readSync(fd, chunk); read > 0; read = readSync(fd, chunk)) {
      hash.update(chunk.subarray(0, read));
      size += read;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    closeSync(fd);
  }
}

function outcome(path: string): HashOutcome {
  try {
    return sha256OnThisThread(path);
  } catch (error) {
    return error instanceof GatehouseError
      ? { code: error.code, message: error.message }
      : { code: 'FILE_UNREADABLE', message: `${path}: ${String(error)}` };
  }
}

// One thread of sha256Files' pool: hashes each batch of paths it is sent, in order, and replies once
// per batch (one message per file cost more than hashing a 32 KiB file).
parentPort?.on('message', (batch: HashBatch) => {
  const reply: HashBatchReply = { id: batch.id, outcomes: batch.paths.map(outcome) };
  parentPort?.postMessage(reply);
});
