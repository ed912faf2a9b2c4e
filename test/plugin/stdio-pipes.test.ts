// serve()'s stdout and stderr for a host that never asks for GRPCStdio (go-plugin < 1.4): after the wait,
// output goes to the real pipes, and a pipe the host does not read pushes back on the plugin as in plain Node.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { generateEphemeralIdentity } from '../../src/tls/certificate.js';
import { WORKER_COOKIE } from '../helpers/callback.js';
import { waitUntil } from '../helpers/process.js';

const exitAfterPrintScript = fileURLToPath(new URL('../fixtures/exit-after-print-plugin.js', import.meta.url));
const backpressurePluginScript = fileURLToPath(new URL('../fixtures/stdio-backpressure-plugin.js', import.meta.url));
const socketRoot = mkdtempSync(join(tmpdir(), 'gatehouse-stdio-pipes-test-'));
test.after.always(() => rmSync(socketRoot, { recursive: true, force: true }));

/** The environment a host that never asks for GRPCStdio gives the worker plugin, and `extra`. */
const hostEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
  [WORKER_COOKIE.key]: WORKER_COOKIE.value,
  PLUGIN_PROTOCOL_VERSIONS: '1',
  PLUGIN_CLIENT_CERT: generateEphemeralIdentity().certificatePem,
  PLUGIN_UNIX_SOCKET_DIR: socketRoot,
  ...extra,
});

test('stdio: with the pipes in use, write() says false while the host does not read stdout, and drain comes when it does', async (t) => {
  // Attack surface: a plugin piping into process.stdout with a host that does not read must pause, not queue.
  const child = spawn(process.execPath, [backpressurePluginScript], { env: hostEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const records = (): Array<{ '@message': string; round?: number; total?: number }> =>
    stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { '@message': string });
  const record = (message: string, round?: number) => records().find((r) => r['@message'] === message && (round === undefined || r.round === round));
  let handshake = '';
  let read = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    if (handshake.includes('\n')) return void (read += chunk.length);
    handshake += chunk.toString('latin1');
    if (!handshake.includes('\n')) return;
    read = handshake.length - handshake.indexOf('\n') - 1;
    // The host reads the handshake line, then (as a host that does not ask for stdio may) nothing more.
    child.stdout.pause();
  });
  t.true(await waitUntil(() => record('stdout pushed back') !== undefined || record('stdout all written') !== undefined, 20_000), stderr);
  t.like(records().find((r) => r['@message'].startsWith('stdout')), { '@message': 'stdout pushed back', round: 1 });
  // No host asks for stdio: after the wait, output goes to the stdout pipe, which nobody reads.
  t.true(await waitUntil(() => record('stdout pushed back', 2) !== undefined, 20_000), stderr);
  t.is(record('stdout drained', 2), undefined, 'no drain while the pipe is not read');
  child.stdout.resume();
  t.true(await waitUntil(() => record('stdout all written') !== undefined, 20_000), stderr);
  t.true(await waitUntil(() => read === record('stdout all written')?.total, 10_000), `${read} bytes read`);
});

test('stdio: what a plugin writes and then exits on, before any host asked for its output, reaches the real stderr', async (t) => {
  // Output waits for a host to ask (5 s): a plugin that exits meanwhile used to take its last words with it.
  const child = spawn(process.execPath, [exitAfterPrintScript], { env: hostEnv({ EXIT_AT_ONCE: '1' }), stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.resume();
  const code = await new Promise((resolve) => child.on('close', resolve));
  t.is(code, 5);
  t.true(stderr.includes('fatal: exiting before any host asked for output\n'), stderr);
});
