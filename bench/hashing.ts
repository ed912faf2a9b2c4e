// Verification: how fast plugin files are hashed, against the floor (`openssl speed -evp sha256` on
// one core) and against go-plugin's SecureConfig.Check on the same files. `openssl speed` divides by its
// user CPU time (not wall time: `-elapsed` would), so a busy machine lowers our wall-clock figure but
// not its; it runs before each repeat of ours, and our CPU time is kept too, for a figure that load
// does not move.
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runJson } from './child.js';
import { loadHashImpl } from './hash-impl.js';
import { summarize } from './stats.js';

const execFileAsync = promisify(execFile);
const MB = 1e6;
/** openssl speed's largest default block, and large enough that per-call overhead is gone. */
const OPENSSL_BLOCK_BYTES = 16384;

export interface HashingOptions {
  largeBytes: number;
  smallFiles: number;
  smallBytes: number;
  repeats: number;
  opensslSeconds: number;
  /** Path of the securehash binary, or undefined without the Go fixtures. */
  securehash: string | undefined;
}

export interface HashingResult {
  implementation: string;
  largeBytes: number;
  largeMBps: number;
  /** The same bytes per second of this process's CPU (every thread: hashing and reading). */
  largeCpuMBps: number;
  smallFiles: number;
  smallBytesEach: number;
  smallMBps: number;
  smallFilesPerSec: number;
  /** Two large files on two threads, against one file on one. */
  twoFilesMBps: number;
  twoFilesSpeedup: number;
  /** The same bytes hashed from memory by node:crypto, 1 MiB per update: the primitive under ours, without the file. */
  memoryMBps: number;
  /** Median of the runs interleaved with ours. */
  opensslMBps: number | null;
  /** `openssl dgst -sha256` on the same file, wall time: OpenSSL's own way of hashing a file, read() included. */
  opensslDgstMBps: number | null;
  opensslRuns: number[];
  opensslNote?: string;
  secureConfigLargeMBps: number | null;
  secureConfigSmallMBps: number | null;
}

function writeFile(path: string, bytes: number, chunk: Buffer): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    for (let written = 0; written < bytes; ) written += writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - written));
    // On disk before anything is timed: the kernel writing back half a gigabyte of dirty pages meanwhile
    // took CPU and memory bandwidth from the first repeats (ours, not openssl's, which reads no file).
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

/** Wall and CPU seconds (this process, all threads) of one run of work. */
async function timedWithCpu(work: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const before = process.cpuUsage();
  const wall = await timed(work);
  const { user, system } = process.cpuUsage(before);
  return { wall, cpu: (user + system) / 1e6 };
}

/** Single-core SHA-256 throughput of OpenSSL's best implementation for this CPU (SHA-NI here). */
async function opensslSpeed(seconds: number): Promise<{ mbps: number | null; note?: string }> {
  try {
    const args = ['speed', '-evp', 'sha256', '-bytes', String(OPENSSL_BLOCK_BYTES), '-seconds', String(seconds), '-mr'];
    const { stdout } = await execFileAsync('openssl', args, { timeout: 60_000 });
    // -mr prints "+F:<n>:sha256:<bytes per second>" for the block size asked for.
    const bytesPerSecond = /^\+F:\d+:sha256:([\d.]+)/m.exec(stdout)?.[1];
    if (bytesPerSecond === undefined) return { mbps: null, note: `unexpected openssl output: ${stdout.slice(0, 200)}` };
    return { mbps: Number(bytesPerSecond) / MB };
  } catch (error) {
    return { mbps: null, note: `openssl speed failed: ${(error as Error).message}` };
  }
}

interface SecureHashOutput {
  bytes: number;
  seconds: number[];
}

/** Wall time of `openssl dgst -sha256 file`, or null without openssl. */
async function opensslDgst(file: string): Promise<number | null> {
  try {
    return await timed(() => execFileAsync('openssl', ['dgst', '-sha256', file], { timeout: 60_000 }));
  } catch {
    return null;
  }
}

/** node:crypto over `bytes` already in memory, `chunk` (1 MiB) per update. */
function hashInMemory(bytes: number, chunk: Buffer): number {
  const started = performance.now();
  const hash = createHash('sha256');
  for (let done = 0; done < bytes; done += chunk.length) hash.update(chunk);
  hash.digest();
  return (performance.now() - started) / 1000;
}

async function secureConfig(binary: string, files: string[], sums: string[], repeats: number): Promise<number> {
  const out = await runJson<SecureHashOutput>(binary, ['-repeat', String(repeats), '-sha256', sums.join(','), ...files]);
  return out.bytes / MB / summarize(out.seconds).median;
}

export async function hashing(options: HashingOptions): Promise<HashingResult> {
  const impl = await loadHashImpl();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-hash-'));
  try {
    // Content does not matter to SHA-256's speed; a random megabyte repeated is quick to write.
    const chunk = randomFillSync(Buffer.alloc(1 << 20));
    const large = [join(dir, 'large-1'), join(dir, 'large-2')];
    for (const path of large) writeFile(path, options.largeBytes, chunk);
    const small = Array.from({ length: options.smallFiles }, (_, i) => join(dir, `small-${i}`));
    for (const [i, path] of small.entries()) writeFile(path, options.smallBytes, chunk.subarray(i % 1000));

    // The files were just written, so all readers below find them in the page cache: this is the
    // CPU's figure, comparable with openssl speed, not the disk's.
    const [first] = large as [string];
    const largeDigest = await impl.sha256File(first);
    const one: number[] = [];
    const oneCpu: number[] = [];
    const memory: number[] = [];
    const dgstRuns: number[] = [];
    const opensslRuns: number[] = [];
    let opensslNote: string | undefined;
    // openssl's whole time split over the repeats, each run just before ours, so that both see the same moment.
    const opensslSeconds = Math.max(1, Math.round(options.opensslSeconds / options.repeats));
    const two: number[] = [];
    const smallTimes: number[] = [];
    let smallSums: string[] = [];
    for (let r = 0; r < options.repeats; r++) {
      const openssl = await opensslSpeed(opensslSeconds);
      if (openssl.mbps !== null) opensslRuns.push(openssl.mbps);
      opensslNote ??= openssl.note;
      const measured = await timedWithCpu(() => impl.sha256File(first));
      one.push(measured.wall);
      oneCpu.push(measured.cpu);
      // Two floors at the same moment: the file left out (memory), and OpenSSL reading the file itself.
      memory.push(hashInMemory(options.largeBytes, chunk));
      const dgst = await opensslDgst(first);
      if (dgst !== null) dgstRuns.push(dgst);
      two.push(await timed(() => impl.sha256Files(large, 2)));
      smallTimes.push(
        await timed(async () => {
          smallSums = (await impl.sha256Files(small, 2)).map((result) => result.sha256 ?? '');
        }),
      );
    }
    const oneSeconds = summarize(one).median;
    const twoSeconds = summarize(two).median;
    const smallSeconds = summarize(smallTimes).median;
    const smallTotal = options.smallFiles * options.smallBytes;

    let secureConfigLargeMBps: number | null = null;
    let secureConfigSmallMBps: number | null = null;
    if (options.securehash !== undefined) {
      secureConfigLargeMBps = await secureConfig(options.securehash, [first], [largeDigest.sha256], options.repeats);
      secureConfigSmallMBps = await secureConfig(options.securehash, small, smallSums, options.repeats);
    }
    return {
      implementation: impl.name,
      largeBytes: options.largeBytes,
      largeMBps: options.largeBytes / MB / oneSeconds,
      largeCpuMBps: options.largeBytes / MB / summarize(oneCpu).median,
      smallFiles: options.smallFiles,
      smallBytesEach: options.smallBytes,
      smallMBps: smallTotal / MB / smallSeconds,
      smallFilesPerSec: options.smallFiles / smallSeconds,
      twoFilesMBps: (2 * options.largeBytes) / MB / twoSeconds,
      twoFilesSpeedup: (2 * oneSeconds) / twoSeconds,
      memoryMBps: options.largeBytes / MB / summarize(memory).median,
      opensslMBps: opensslRuns.length > 0 ? summarize(opensslRuns).median : null,
      opensslDgstMBps: dgstRuns.length > 0 ? options.largeBytes / MB / summarize(dgstRuns).median : null,
      opensslRuns,
      ...(opensslNote !== undefined ? { opensslNote } : {}),
      secureConfigLargeMBps,
      secureConfigSmallMBps,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
