// The price of isolation in the secrets server (issue 13): kv reads per second over HTTP through the
// server (engine in a verified, sealed, sandboxed plugin; its storage over the broker) at 16 concurrent
// clients, against the same kv engine code called in-process on an in-memory storage, and the time
// from POST /v1/sys/mounts to the first answered read. `npm run bench` runs it as scenario "secrets".
//
//   node dist/bench/secrets-server.js [--seconds N] [--mounts N] [--out FILE]
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { generateKeyPair, writeKeyPair } from 'gatehouse-plugins';
import { initHome } from '../examples/secrets-server/config.js';
import type { Storage } from '../examples/secrets-server/engines/engine.js';
import { handleKV } from '../examples/secrets-server/engines/kv/kv.js';
import { buildRelease } from '../examples/secrets-server/release.js';

const { values } = parseArgs({ options: { seconds: { type: 'string' }, mounts: { type: 'string' }, out: { type: 'string' } } });
const SECONDS = Number(values.seconds ?? 3);
const MOUNTS = Number(values.mounts ?? 5);
const CONCURRENCY = 16;
const MAIN = fileURLToPath(new URL('../examples/secrets-server/main.js', import.meta.url));
const progress = (line: string) => void process.stderr.write(`${line}\n`);

/** Runs `op` from CONCURRENCY loops for SECONDS; returns completed operations per second. */
async function throughput(op: () => Promise<unknown>): Promise<number> {
  const warmUntil = Date.now() + 300;
  while (Date.now() < warmUntil) await op();
  let count = 0;
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        await op();
        count++;
      }
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

const loadAtStart = loadavg()[0];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

// In-process: the same engine code, its storage a Map.
const memory = new Map<string, Buffer>();
const storage: Storage = {
  get: async (key) => memory.get(key),
  put: async (key, value) => void memory.set(key, value),
  // One process and no await between the read and the write: nothing can come in between.
  update: async (key, change) => {
    const { value, result } = change(memory.get(key));
    if (value !== undefined) memory.set(key, value);
    return result;
  },
  delete: async (key) => void memory.delete(key),
  list: async (prefix) => [...memory.keys()].filter((key) => key.startsWith(prefix)),
};
await handleKV({ operation: 'write', path: 'data/bench', body: { data: { value: 'x'.repeat(64) } }, storage });
const inProcess = await throughput(() => handleKV({ operation: 'read', path: 'data/bench', body: {}, storage }));
progress(`in-process engine: ${inProcess.toFixed(0)} reads/s`);

// Through the server: a child process, as in production.
const root = await mkdtemp(join(tmpdir(), 'gatehouse-bench-secrets-'));
// Searchable, not listable: a root server runs its engines as nobody, who must reach root/tmp's socket directories.
await chmod(root, 0o711);
let server: ReturnType<typeof spawn> | undefined;
try {
  const key = generateKeyPair();
  await mkdir(join(root, 'signing'), { mode: 0o700 });
  await mkdir(join(root, 'trusted'));
  const { publicKeyPath } = await writeKeyPair(join(root, 'signing', 'release'), key);
  await copyFile(publicKeyPath, join(root, 'trusted', 'release.pub'));
  const { manifestPath } = await buildRelease({ outDir: join(root, 'release'), engines: [{ engine: 'kv', version: '1.0.0' }], secretKey: key.secretKey, manifestVersion: 1 });
  const home = join(root, 'home');
  const { rootToken } = await initHome({ home, release: { manifest: manifestPath, trustedKeysDir: join(root, 'trusted') }, port: 0 });
  await mkdir(join(root, 'tmp'), { mode: 0o711 });
  server = spawn(process.execPath, [MAIN, 'serve', '--home', home], { env: { TMPDIR: join(root, 'tmp') }, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: server?.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const match = /^listening on (\S+)$/.exec(line);
      if (match) resolve(match[1] as string);
    });
    server?.once('exit', () => reject(new Error('the server exited')));
  });
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(url + path, { method, headers: { 'x-vault-token': rootToken }, ...(body ? { body: JSON.stringify(body) } : {}) });
    await response.arrayBuffer();
    if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status}`);
  };

  const mountTimes: number[] = [];
  for (let i = 0; i < MOUNTS; i++) {
    const started = performance.now();
    await api('POST', `/v1/sys/mounts/m${i}`, { plugin: 'kv', version: '1.0.0' });
    await api('PUT', `/v1/m${i}/data/bench`, { data: { value: 'x'.repeat(64) } });
    await api('GET', `/v1/m${i}/data/bench`);
    mountTimes.push(performance.now() - started);
    if (i > 0) await api('DELETE', `/v1/sys/mounts/m${i}`);
  }
  progress(`mount to first response: median ${median(mountTimes).toFixed(0)} ms of ${MOUNTS}`);
  const throughServer = await throughput(() => api('GET', '/v1/m0/data/bench'));
  progress(`through the server: ${throughServer.toFixed(0)} reads/s`);

  const results = {
    date: new Date().toISOString(),
    node: process.version,
    // Figures from a shared, overloaded machine mean little: the load says how shared it was.
    loadAverage1m: { start: loadAtStart, end: loadavg()[0] },
    concurrency: CONCURRENCY,
    seconds: SECONDS,
    kvReadsPerSecondThroughServer: Math.round(throughServer),
    kvReadsPerSecondInProcess: Math.round(inProcess),
    isolationRatio: Number((inProcess / throughServer).toFixed(1)),
    mountToFirstResponseMs: { median: Math.round(median(mountTimes)), samples: mountTimes.map(Math.round) },
  };
  // One line: bench/main.ts reads the last stdout line as this helper's result.
  process.stdout.write(`${JSON.stringify(results)}\n`);
  if (values.out) await writeFile(values.out, `${JSON.stringify(results, null, 2)}\n`);
} finally {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((resolve) => server?.once('exit', resolve));
  }
  await rm(root, { recursive: true, force: true });
}
