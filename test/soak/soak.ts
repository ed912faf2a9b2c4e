// Soak: launch and kill a plugin CYCLES times in this process and report what is left behind: child
// processes, file descriptors, entries in the temporary directory, and memory growth after a warm-up.
//
//   node --expose-gc dist/test/soak/soak.js [CYCLES] [COMMAND [ARGS...]]
//
// COMMAND (absolute) defaults to the TypeScript KV plugin. The first quarter of the cycles warms up;
// what is measured is the rest. Prints one JSON line (a SoakReport); exits 1 if anything was left
// behind or memory grew beyond its bound. test/soak/soak.test.ts runs a short version.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch } from '../../src/index.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { kvPluginScript } from '../helpers/paths.js';
import { waitUntil } from '../helpers/process.js';
import { descendants } from '../hostile/procfs.js';

const MiB = 1024 * 1024;
/** JavaScript heap after a full collection: what a per-cycle leak of objects would grow. */
const MAX_HEAP_GROWTH_BYTES = 4 * MiB;
/**
 * Resident memory also holds what the allocator keeps for reuse: it rises for the first few hundred
 * cycles (to about 110 MiB with the Go plugin), then stays flat, within a MiB over thousands more.
 */
const MAX_RSS_GROWTH_BYTES = 64 * MiB;

export interface SoakReport {
  cycles: number;
  command: string;
  msPerCycle: number;
  processesLeft: number;
  fdsBefore: number;
  fdsAfter: number;
  tmpEntriesLeft: string[];
  heapGrowthBytes: number;
  rssGrowthBytes: number;
  maxHeapGrowthBytes: number;
  maxRssGrowthBytes: number;
}

const cycles = Number(process.argv[2] ?? 1000);
/** Cycles run before the baseline, so that lazily built state (gRPC, TLS, code) is already there. */
const warmUp = Math.max(20, Math.round(cycles / 4));
const [command = process.execPath, ...args] = process.argv.length > 3 ? process.argv.slice(3) : [process.execPath, kvPluginScript];
// Every socket directory goes here, so that anything left behind is ours and visible.
const outer = tmpdir();
const scratch = mkdtempSync(join(outer, 'gatehouse-soak-'));
process.env.TMPDIR = scratch;
const kvService = loadKVService();

async function cycle(i: number): Promise<void> {
  const plugin = await launch({ command, args, cookie: KV_COOKIE });
  const kv = plugin.client(kvService);
  await kv.Put({ key: 'k', value: Buffer.from(String(i)) });
  const status = await plugin.kill();
  if (status.code !== 0) throw new Error(`cycle ${i}: the plugin ended with ${JSON.stringify(status)}`);
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

function settle(): { rss: number; heap: number; fds: number } {
  if (global.gc === undefined) throw new Error('run with node --expose-gc: the heap is measured after a full collection');
  global.gc();
  return { rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed, fds: openFds() };
}

for (let i = 0; i < warmUp; i++) await cycle(i);
// Closed channels and exited children release their handles on the next turns of the event loop.
await new Promise((resolve) => setTimeout(resolve, 200));
const before = settle();
const started = Date.now();
for (let i = 0; i < cycles; i++) await cycle(i);
const ms = Date.now() - started;
// On a loaded machine the last handles may take longer to go; a leak stays whatever the wait.
await waitUntil(() => openFds() <= before.fds, 2000);
const after = settle();

const report: SoakReport = {
  cycles,
  command: [command, ...args].join(' '),
  msPerCycle: Math.round((ms / cycles) * 10) / 10,
  processesLeft: descendants(process.pid).length,
  fdsBefore: before.fds,
  fdsAfter: after.fds,
  tmpEntriesLeft: readdirSync(scratch),
  heapGrowthBytes: after.heap - before.heap,
  rssGrowthBytes: after.rss - before.rss,
  maxHeapGrowthBytes: MAX_HEAP_GROWTH_BYTES,
  maxRssGrowthBytes: MAX_RSS_GROWTH_BYTES,
};
process.env.TMPDIR = outer;
rmSync(scratch, { recursive: true, force: true });
process.stdout.write(JSON.stringify(report) + '\n');
const leaked =
  report.processesLeft > 0 ||
  report.fdsAfter > report.fdsBefore ||
  report.tmpEntriesLeft.length > 0 ||
  report.heapGrowthBytes > MAX_HEAP_GROWTH_BYTES ||
  report.rssGrowthBytes > MAX_RSS_GROWTH_BYTES;
process.exit(leaked ? 1 : 0);
