import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { GatehouseError } from '../errors.js';
import type { FileDigest, HashWorkerReply } from './hash.js';
import { openRegularFile } from './untrusted-file.js';

const CHUNK_BYTES = 1 << 20;
const chunk = Buffer.allocUnsafe(CHUNK_BYTES);

/**
 * Reads synchronously on this worker's own thread: asynchronous reads go through libuv's shared
 * thread pool and compete with the hashing threads for the cores (measured: two files on two cores
 * scaled 1.43x that way). The open is the shared one, with its O_NOFOLLOW and regular-file checks.
 */
async function sha256OnThisThread(path: string): Promise<FileDigest> {
  const opened = await openRegularFile(path);
  try {
    const hash = createHash('sha256');
    let size = 0;
    for (let read = readSync(opened.handle.fd, chunk); read > 0; read = readSync(opened.handle.fd, chunk)) {
      hash.update(chunk.subarray(0, read));
      size += read;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    await opened.handle.close();
  }
}

// One thread of sha256Files' pool: hashes each path it is sent and replies with the digest or the error's code.
parentPort?.on('message', (job: { id: number; path: string }) => {
  sha256OnThisThread(job.path).then(
    (digest) => reply({ id: job.id, ...digest }),
    (error: unknown) =>
      reply(
        error instanceof GatehouseError
          ? { id: job.id, code: error.code, message: error.message }
          : { id: job.id, code: 'FILE_UNREADABLE', message: `${job.path}: ${String(error)}` },
      ),
  );
});

function reply(message: HashWorkerReply): void {
  parentPort?.postMessage(message);
}
