// What the figures were measured on: they mean little without the machine and the versions.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface Machine {
  cpu: string;
  cores: number;
  memoryBytes: number;
  os: string;
  /** Microseconds per first touch of a page of memory (see pageFaultMicros); null where none was counted. */
  pageFaultMicros: number | null;
}

export interface Versions {
  node: string;
  grpcJs: string;
  /** Of the Go fixtures as built (dist/interop-go/bin/build-stamp.json); null without them. */
  go: string | null;
  goPlugin: string | null;
  openssl: string | null;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    pageFaultMicros: pageFaultMicros(),
  };
}

/**
 * What a first touch of memory costs on this machine: 32 MiB never used before, one write per page, the
 * time over the minor page faults counted. A process start takes thousands of them (`node -e 0` about
 * 2,000), and on the VM of docs/benchmarks.md's seventh run each cost ~16 µs, against 0.13 µs for a
 * second touch of the same page: it says how much of a start figure is the machine's memory, not the code.
 */
function pageFaultMicros(): number | null {
  // Zero-filled lazily by the kernel: no page of it is touched before the loop.
  const memory = new Uint8Array(32 * 2 ** 20);
  const faultsBefore = process.resourceUsage().minorPageFault;
  const started = performance.now();
  for (let offset = 0; offset < memory.length; offset += 4096) memory[offset] = 1;
  const micros = (performance.now() - started) * 1000;
  const faults = process.resourceUsage().minorPageFault - faultsBefore;
  return faults > 0 ? micros / faults : null;
}

function grpcJsVersion(): string {
  const require = createRequire(import.meta.url);
  // The package's exports hide package.json; find it next to the resolved entry point.
  let dir = path.dirname(require.resolve('@grpc/grpc-js'));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@grpc/grpc-js') return pkg.version ?? 'unknown';
    } catch {
      // not here; look further up
    }
    const parent = path.dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

export async function versions(goBinDir: string | undefined): Promise<Versions> {
  let go: string | null = null;
  let goPlugin: string | null = null;
  if (goBinDir !== undefined) {
    try {
      const stamp = JSON.parse(readFileSync(path.join(goBinDir, 'build-stamp.json'), 'utf8')) as { go?: string; goPlugin?: string };
      go = stamp.go ?? null;
      goPlugin = stamp.goPlugin ?? null;
    } catch {
      // built without a stamp: leave unknown
    }
  }
  let openssl: string | null = null;
  try {
    openssl = (await execFileAsync('openssl', ['version'])).stdout.trim();
  } catch {
    // no openssl: the hashing floor is reported as missing
  }
  return { node: process.version, grpcJs: grpcJsVersion(), go, goPlugin, openssl };
}
