// The unary figures of gatehouse and of the node:http2 floor measured in one host process, in alternating
// slices, each client on its own plugin process. This machine's speed drifts by tens of percent over
// minutes (docs/benchmarks.md, seventh run: one round's host CPU per call was 249 µs, another's 750 µs);
// separate processes, one after the other, take that drift into the ratio however many rounds they run,
// while slices a fraction of a second long share it between the two sides.
import { launchKV, callLoops, CONCURRENCIES, putSmall, smallGet, unaryResult, type KVCalls, type UnaryResult, type WorkloadOptions } from './host-workloads.js';
import { openFloorClient } from './http2-floor.js';
import { histogram, type Histogram } from './stats.js';

/** Slices per side and caller count; `options.seconds` is shared out between them. */
const SLICES = 10;

/** A side's figures, and its latencies (µs) in 1% buckets: the p99 of all rounds' calls together rests on five times the calls of one. */
export type InterleavedSide = UnaryResult & { latencyHistogram: Histogram };

export interface InterleavedUnaryResult {
  concurrency: number;
  gatehouse: InterleavedSide;
  floor: InterleavedSide;
}

interface Side {
  kv: KVCalls;
  latenciesUs: number[];
  elapsedSeconds: number;
  cpuUs: number;
  warmupCallsPerSec: number;
}

/**
 * Each side warms up on its own for `warmupSeconds`, then the two alternate slices, in the order
 * ABBA..., so that neither always follows the other. Before each slice the young generation is collected
 * (with --expose-gc): a slice then pays for the garbage it makes, not for what the other side left.
 */
export async function interleavedUnary(options: WorkloadOptions): Promise<InterleavedUnaryResult[]> {
  const gatehouse = await launchKV(options.command);
  try {
    const floor = await openFloorClient(options.command);
    try {
      await putSmall(gatehouse.kv);
      await putSmall(floor.kv);
      const results: InterleavedUnaryResult[] = [];
      for (const concurrency of CONCURRENCIES) {
        const sides: [Side, Side] = [newSide(gatehouse.kv), newSide(floor.kv)];
        for (const side of sides) {
          const calls: number[] = [];
          const warmup = await callLoops(concurrency, options.warmupSeconds, smallGet(side.kv), calls);
          side.warmupCallsPerSec = calls.length / warmup.elapsedSeconds;
        }
        for (let slice = 0; slice < SLICES; slice++) {
          for (const side of slice % 2 === 0 ? sides : [sides[1], sides[0]]) {
            globalThis.gc?.({ type: 'minor' });
            const measured = await callLoops(concurrency, options.seconds / SLICES, smallGet(side.kv), side.latenciesUs);
            side.elapsedSeconds += measured.elapsedSeconds;
            side.cpuUs += measured.cpuUs;
          }
        }
        const result = (side: Side): InterleavedSide => ({
          ...unaryResult(concurrency, side.latenciesUs, side.elapsedSeconds, side.cpuUs, side.warmupCallsPerSec),
          latencyHistogram: histogram(side.latenciesUs),
        });
        results.push({ concurrency, gatehouse: result(sides[0]), floor: result(sides[1]) });
      }
      return results;
    } finally {
      floor.close();
    }
  } finally {
    await gatehouse.plugin.kill();
  }
}

function newSide(kv: KVCalls): Side {
  return { kv, latenciesUs: [], elapsedSeconds: 0, cpuUs: 0, warmupCallsPerSec: 0 };
}
