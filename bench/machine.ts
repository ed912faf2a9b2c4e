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
  };
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
