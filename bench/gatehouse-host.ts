// The gatehouse side of `npm run bench`, run as its own process for each workload, as kvbench is for
// go-plugin: a fresh host per figure keeps one workload's heap and JIT state out of the next.
//
//   node [--expose-gc] dist/bench/gatehouse-host.js workload --launches N --seconds S --big-seconds S
//        --warmup-seconds S -- COMMAND [ARGS...]
//   node --expose-gc dist/bench/gatehouse-host.js live --n N -- COMMAND [ARGS...]
//   node dist/bench/gatehouse-host.js certs --n N
//   node dist/bench/gatehouse-host.js start --n N -- COMMAND [ARGS...]
//   node dist/bench/gatehouse-host.js floor --n N
//   node dist/bench/gatehouse-host.js http2-floor --seconds S --big-seconds S --warmup-seconds S -- COMMAND [ARGS...]
//   node dist/bench/gatehouse-host.js launch-floor --launches N -- COMMAND [ARGS...]
//   node --expose-gc dist/bench/gatehouse-host.js unary-interleaved --seconds S --warmup-seconds S -- COMMAND [ARGS...]
//   node dist/bench/gatehouse-host.js launch-interleaved --launches N -- COMMAND [ARGS...]
//
// Prints exactly one JSON object on stdout.
import { parseArgs } from 'node:util';
import { generateEphemeralIdentity } from '../src/tls/certificate.js';
import { live, workload, type WorkloadOptions } from './host-workloads.js';
import { http2FloorWorkload } from './http2-floor.js';
import { interleavedLaunch } from './interleaved-launch.js';
import { interleavedUnary } from './interleaved-unary.js';
import { launchFloor } from './launch-floor.js';
import { nodeFloor, pluginStarts } from './plugin-start.js';

function positiveNumber(value: string | undefined, fallback: number, name: string): number {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${value}`);
  return n;
}

/**
 * One identity generated cold (the first in this process: key generation warms up), then n warm: a host
 * pays the cold one once per process, the warm one on every launch.
 */
async function certs(n: number): Promise<{ coldMs: number; ms: number[] }> {
  let started = performance.now();
  generateEphemeralIdentity();
  const coldMs = performance.now() - started;
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    started = performance.now();
    generateEphemeralIdentity();
    ms.push(performance.now() - started);
  }
  return { coldMs, ms };
}

async function main(): Promise<unknown> {
  const [mode, ...rest] = process.argv.slice(2);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      launches: { type: 'string' },
      seconds: { type: 'string' },
      'big-seconds': { type: 'string' },
      'warmup-seconds': { type: 'string' },
      n: { type: 'string' },
    },
  });
  const n = positiveNumber(values.n, 10, 'n');
  const workloadOptions = (launches: number): WorkloadOptions => ({
    command: positionals,
    launches: positiveNumber(values.launches, launches, 'launches'),
    seconds: positiveNumber(values.seconds, 2, 'seconds'),
    bigSeconds: positiveNumber(values['big-seconds'], 2, 'big-seconds'),
    warmupSeconds: positiveNumber(values['warmup-seconds'], 0.2, 'warmup-seconds'),
  });
  switch (mode) {
    case 'workload':
      return workload(workloadOptions(20));
    case 'http2-floor':
      // The floor launches nothing to time.
      return http2FloorWorkload(workloadOptions(0));
    case 'unary-interleaved':
      return interleavedUnary(workloadOptions(0));
    case 'launch-interleaved':
      return interleavedLaunch(positionals, positiveNumber(values.launches, 20, 'launches'));
    case 'launch-floor':
      return launchFloor(positionals, positiveNumber(values.launches, 20, 'launches'));
    case 'live':
      return live(positionals, n);
    case 'certs':
      return certs(n);
    case 'start': {
      const host = generateEphemeralIdentity();
      return pluginStarts(positionals, n, host.certificatePem);
    }
    case 'floor':
      return { ms: await nodeFloor(n) };
    default:
      throw new Error(`unknown mode ${String(mode)}: workload, http2-floor, unary-interleaved, launch-floor, launch-interleaved, live, certs, start or floor`);
  }
}

main().then(
  (result) => process.stdout.write(JSON.stringify(result) + '\n'),
  (error: unknown) => {
    process.stderr.write(`gatehouse-host: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
