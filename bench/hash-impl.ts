// The hashing under test: src/verify's sha256File / sha256Files when they exist, else node:crypto
// streaming (noted in the results). Loaded by URL at run time, so that the bench still builds while
// src/verify changes under it.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

export interface HashImpl {
  /** What was measured, for the results file. */
  name: string;
  sha256File(path: string): Promise<{ sha256: string; size: number }>;
  /** Hashes on up to `concurrency` threads. */
  sha256Files(paths: readonly string[], concurrency: number): Promise<Array<{ sha256?: string; ok: boolean }>>;
}

interface VerifyHashModule {
  sha256File?: unknown;
  sha256Files?: unknown;
}

const verifyHashUrl = new URL('../src/verify/hash.js', import.meta.url);

export async function loadHashImpl(): Promise<HashImpl> {
  if (existsSync(fileURLToPath(verifyHashUrl))) {
    const module = (await import(verifyHashUrl.href)) as VerifyHashModule;
    if (typeof module.sha256File === 'function' && typeof module.sha256Files === 'function') {
      return {
        name: 'src/verify sha256File / sha256Files',
        sha256File: module.sha256File as HashImpl['sha256File'],
        sha256Files: module.sha256Files as HashImpl['sha256Files'],
      };
    }
  }
  return { name: 'node:crypto streaming (src/verify has no sha256File yet)', sha256File: streamHash, sha256Files: threadHash };
}

async function streamHash(path: string): Promise<{ sha256: string; size: number }> {
  const handle = await open(path);
  try {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of handle.createReadStream({ highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    await handle.close();
  }
}

// The fallback's thread: node:crypto hashes on the calling thread, so parallel hashing needs workers.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { createReadStream } = require('node:fs');
parentPort.on('message', (path) => {
  const hash = createHash('sha256');
  createReadStream(path, { highWaterMark: 1 << 20 })
    .on('data', (chunk) => hash.update(chunk))
    .on('end', () => parentPort.postMessage(hash.digest('hex')));
});`;

async function threadHash(paths: readonly string[], concurrency: number): Promise<Array<{ sha256?: string; ok: boolean }>> {
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, paths.length)) }, () => new Worker(WORKER_SOURCE, { eval: true }));
  try {
    const results = new Array<{ sha256?: string; ok: boolean }>(paths.length);
    let next = 0;
    await Promise.all(
      workers.map(async (worker) => {
        while (next < paths.length) {
          const index = next++;
          const sha256 = await new Promise<string>((resolve) => {
            worker.once('message', resolve);
            worker.postMessage(paths[index]);
          });
          results[index] = { sha256, ok: true };
        }
      }),
    );
    return results;
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}
