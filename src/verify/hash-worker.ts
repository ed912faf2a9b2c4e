import { parentPort } from 'node:worker_threads';
import { GatehouseError } from '../errors.js';
import { sha256File, type HashWorkerReply } from './hash.js';

// One thread of sha256Files' pool: hashes each path it is sent and replies with the digest or the error's code.
parentPort?.on('message', (job: { id: number; path: string }) => {
  sha256File(job.path).then(
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
