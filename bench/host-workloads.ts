// The KV workloads a gatehouse host runs, shaped exactly like kvbench's (test/interop/go/kvbench) so
// that each figure has a go-plugin counterpart measured the same way.
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { launch, type Plugin, type ServiceClient } from '../src/index.js';
import { KV_COOKIE, loadKVService, type KVService } from '../examples/kv/kv.js';
import { percentile } from './stats.js';

const SMALL_VALUE_BYTES = 64;
const BIG_VALUE_BYTES = 1 << 20;

export interface UnaryResult {
  concurrency: number;
  calls: number;
  seconds: number;
  callsPerSec: number;
  p50Us: number;
  p99Us: number;
  /** The host process's CPU (user + system) per call: steadier than calls/s on a loaded machine. */
  cpuUsPerCall: number;
  /** Calls/s during the warm-up just before, while V8 is still optimising the call path. */
  warmupCallsPerSec: number;
}

export interface BigResult {
  valueBytes: number;
  rounds: number;
  seconds: number;
  mbPerSec: number;
}

export interface WorkloadResult {
  /** The host process's first launch: one-time set-up (module loading) included. */
  firstLaunchMs: number;
  /** The launches after it, a long-running host's cost per launch. */
  launchMs: number[];
  unary: UnaryResult[];
  big: BigResult;
}

export interface WorkloadOptions {
  command: readonly string[];
  launches: number;
  seconds: number;
  bigSeconds: number;
  warmupSeconds: number;
}

const kvService = loadKVService();

interface Launched {
  plugin: Plugin;
  kv: ServiceClient<KVService>;
}

/** The plugin launched by gatehouse, with its KV client. */
export async function launchKV(command: readonly string[]): Promise<Launched> {
  const [file, ...args] = command;
  if (file === undefined) throw new Error('no plugin command');
  const plugin = await launch({ command: file, args, cookie: KV_COOKIE });
  return { plugin, kv: plugin.client(kvService) };
}

/** Spawn to the first Put and Get answered, in ms. The kill after it is not timed (kvbench does the same). */
export async function timedLaunch(command: readonly string[]): Promise<number> {
  const started = performance.now();
  const { plugin, kv } = await launchKV(command);
  try {
    await kv.Put({ key: 'k', value: Buffer.alloc(SMALL_VALUE_BYTES, 'v') });
    await kv.Get({ key: 'k' });
    return performance.now() - started;
  } finally {
    await plugin.kill();
  }
}

/** {@link timedLaunch} n+1 times; the first is returned apart. */
async function launchLoop(command: readonly string[], n: number): Promise<[number, number[]]> {
  const times: number[] = [];
  for (let i = 0; i <= n; i++) times.push(await timedLaunch(command));
  const [first, ...rest] = times as [number, ...number[]];
  return [first, rest];
}

/**
 * Calls op from `concurrency` loops for `seconds`, appending each call's latency in µs to `record`;
 * returns the seconds it took and the host process's CPU (user + system, µs) meanwhile.
 */
export async function callLoops(
  concurrency: number,
  seconds: number,
  op: () => Promise<unknown>,
  record: number[],
): Promise<{ elapsedSeconds: number; cpuUs: number }> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const callStarted = performance.now();
      await op();
      record.push((performance.now() - callStarted) * 1000);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const elapsedSeconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { elapsedSeconds, cpuUs: cpu.user + cpu.system };
}

/**
 * Calls op from `concurrency` loops until the time is up, after a warm-up of the same shape (JIT and
 * HTTP/2 windows settle), and returns each call's latency in µs. The warm-up's own rate is returned
 * too: a Node.js host takes one to two seconds after a launch to optimise its call path.
 */
async function runFor(
  concurrency: number,
  seconds: number,
  warmupSeconds: number,
  op: () => Promise<unknown>,
): Promise<{ latenciesUs: number[]; elapsedSeconds: number; cpuUs: number; warmupCallsPerSec: number }> {
  const warmupCalls: number[] = [];
  const warmup = await callLoops(concurrency, warmupSeconds, op, warmupCalls);
  const latenciesUs: number[] = [];
  const { elapsedSeconds, cpuUs } = await callLoops(concurrency, seconds, op, latenciesUs);
  return { latenciesUs, elapsedSeconds, cpuUs, warmupCallsPerSec: warmupCalls.length / warmup.elapsedSeconds };
}

/** The KV calls a workload makes: a gatehouse client, or the floor's bare one. */
export type KVCalls = Pick<ServiceClient<KVService>, 'Get' | 'Put'>;

/** The caller counts of the unary figures, as kvbench runs them. */
export const CONCURRENCIES = [1, 16] as const;

/** Stores the small value that the unary figures read. */
export async function putSmall(kv: KVCalls): Promise<void> {
  await kv.Put({ key: 'small', value: Buffer.alloc(SMALL_VALUE_BYTES, 's') });
}

/** The Get of the small value that the unary figures time. */
export function smallGet(kv: KVCalls): () => Promise<unknown> {
  return () => kv.Get({ key: 'small' });
}

export async function unary(kv: KVCalls, concurrency: number, options: WorkloadOptions): Promise<UnaryResult> {
  const { latenciesUs, elapsedSeconds, cpuUs, warmupCallsPerSec } = await runFor(concurrency, options.seconds, options.warmupSeconds, smallGet(kv));
  return unaryResult(concurrency, latenciesUs, elapsedSeconds, cpuUs, warmupCallsPerSec);
}

/** The figures of a unary run from its latencies (sorted here), time and CPU. */
export function unaryResult(concurrency: number, latenciesUs: number[], elapsedSeconds: number, cpuUs: number, warmupCallsPerSec: number): UnaryResult {
  latenciesUs.sort((a, b) => a - b);
  return {
    concurrency,
    calls: latenciesUs.length,
    seconds: elapsedSeconds,
    callsPerSec: latenciesUs.length / elapsedSeconds,
    p50Us: percentile(latenciesUs, 50),
    p99Us: percentile(latenciesUs, 99),
    cpuUsPerCall: cpuUs / latenciesUs.length,
    warmupCallsPerSec,
  };
}

/** A 1 MiB value up (Put) and back (Get) per round; MB/s counts both directions, as kvbench does. */
export async function big(kv: KVCalls, options: WorkloadOptions): Promise<BigResult> {
  const value = Buffer.alloc(BIG_VALUE_BYTES, 'b');
  const { latenciesUs, elapsedSeconds } = await runFor(1, options.bigSeconds, options.warmupSeconds, async () => {
    await kv.Put({ key: 'big', value });
    const got = await kv.Get({ key: 'big' });
    if (got.value.length !== BIG_VALUE_BYTES) throw new Error(`got ${got.value.length} bytes back`);
  });
  const rounds = latenciesUs.length;
  return {
    valueBytes: BIG_VALUE_BYTES,
    rounds,
    seconds: elapsedSeconds,
    mbPerSec: (rounds * 2 * BIG_VALUE_BYTES) / 1e6 / elapsedSeconds,
  };
}

export async function workload(options: WorkloadOptions): Promise<WorkloadResult> {
  const [firstLaunchMs, launchMs] = await launchLoop(options.command, options.launches);
  const { plugin, kv } = await launchKV(options.command);
  try {
    await putSmall(kv);
    const results: UnaryResult[] = [];
    for (const concurrency of CONCURRENCIES) results.push(await unary(kv, concurrency, options));
    return { firstLaunchMs, launchMs, unary: results, big: await big(kv, options) };
  } finally {
    await plugin.kill();
  }
}

export interface LiveResult {
  plugins: number;
  rssBefore: number;
  rssAfter: number;
  fdsBefore: number;
  fdsAfter: number;
}

function selfUsage(): { rss: number; fds: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  return { rss: Number(kb) * 1024, fds: readdirSync('/proc/self/fd').length };
}

/** Live memory only: collect garbage (the runner is started with --expose-gc) and let it settle. */
async function settled(): Promise<{ rss: number; fds: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('the live workload needs node --expose-gc');
  gc();
  await sleep(100);
  gc();
  return selfUsage();
}

/** The host's RSS and descriptors before and after n plugins are running (each answered one call). */
export async function live(command: readonly string[], n: number): Promise<LiveResult> {
  // One launch first, so that lazily loaded code (certificates, TLS, gRPC) is in the baseline, as in kvbench.
  const warm = await launchKV(command);
  await warm.kv.Put({ key: 'k', value: Buffer.from('v') });
  await warm.plugin.kill();

  const before = await settled();
  const running: Launched[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const launched = await launchKV(command);
      running.push(launched);
      await launched.kv.Put({ key: 'k', value: Buffer.from('v') });
    }
    const after = await settled();
    return { plugins: n, rssBefore: before.rss, rssAfter: after.rss, fdsBefore: before.fds, fdsAfter: after.fds };
  } finally {
    await Promise.all(running.map(({ plugin }) => plugin.kill()));
  }
}
