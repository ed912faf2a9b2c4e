// A plugin flooding stdout and stderr cannot grow the host's memory: measured in a separate host
// process, so that nothing else in the test runner moves the figure.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { KV_COOKIE } from '../../examples/kv/kv.js';
import { generateEphemeralIdentity } from '../../src/tls/certificate.js';
import { floodYamux } from '../fixtures/yamux-flood.js';
import { fakePluginScript } from '../helpers/paths.js';
import { hostStillWorks, privateTmpdir } from './harness.js';

const execFileAsync = promisify(execFile);
privateTmpdir(test);

const MiB = 1024 * 1024;
/** Stop after this much output... */
const TARGET_BYTES = 1024 * MiB;
/**
 * ...or this long, on a slow machine; it must still have seen MIN_BYTES, far more than the bound on
 * growth, so buffering would show. Generous: a loaded 2-core machine is slow, not wrong.
 */
const MAX_MS = 150_000;
const MIN_BYTES = 512 * MiB;
/**
 * A host takes about 25 MiB more at its highest than before the launch (launch, TLS, gRPC and the
 * stream buffers included) while 1 GiB goes through; the bound leaves room for a busy garbage
 * collector and is still far below what buffering the flood would take.
 */
const MAX_RSS_GROWTH = 96 * MiB;

test('flood: a plugin writing stdout and stderr at full speed leaves the host\'s memory bounded', async (t) => {
  const host = fileURLToPath(new URL('../fixtures/flood-host.js', import.meta.url));
  t.timeout(MAX_MS + 60_000);
  const { stdout } = await execFileAsync(process.execPath, [host, String(TARGET_BYTES), String(MAX_MS)], { timeout: MAX_MS + 30_000 });
  const result = JSON.parse(stdout.trim()) as { rssBefore: number; rssMax: number; bytes: number; ms: number; records: number; stdoutLines: number };
  const growth = result.rssMax - result.rssBefore;
  t.log(`${Math.round(result.bytes / MiB)} MiB in ${result.ms} ms; host RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  t.true(result.bytes >= MIN_BYTES, `only ${result.bytes} bytes went through`);
  t.true(result.records > 1000 && result.stdoutLines > 1000, 'the host read both streams line by line');
  t.true(growth < MAX_RSS_GROWTH, `host RSS grew by ${growth} bytes`);
  await hostStillWorks(t);
});

/** Start timeout of the multiplexed launches below; the launch must fail, not wait on the flood. */
const MUX_START_TIMEOUT_MS = 6000;

for (const kind of ['ping', 'syn'] as const) {
  test(`flood: a multiplexing plugin flooding yamux ${kind}s without reading fails its launch with the host's memory bounded`, async (t) => {
    // Attack: each ping or SYN answered through a write the plugin never reads (measured before: +1 GiB in 10 s).
    const host = fileURLToPath(new URL('../fixtures/mux-flood-host.js', import.meta.url));
    const { stdout } = await execFileAsync(process.execPath, [host, kind, String(MUX_START_TIMEOUT_MS)], { timeout: 50_000 });
    const result = JSON.parse(stdout.trim()) as { rssBefore: number; rssMax: number; ms: number; code: string };
    const growth = result.rssMax - result.rssBefore;
    t.log(`launch failed with ${result.code} after ${result.ms} ms; host RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
    t.is(result.code, 'MULTIPLEX_PROTOCOL_ERROR');
    t.true(growth < MAX_RSS_GROWTH, `host RSS grew by ${growth} bytes`);
  });

  test(`flood: a host flooding serve()'s multiplexed connection with yamux ${kind}s is cut off with the plugin's memory bounded`, async (t) => {
    // Attack: the same flood from a hostile host (or any process that reaches the plugin's socket).
    const plugin = spawn(process.execPath, [fakePluginScript], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: {
        FAKE_MODE: 'env-kv',
        [KV_COOKIE.key]: KV_COOKIE.value,
        PLUGIN_PROTOCOL_VERSIONS: '1',
        PLUGIN_CLIENT_CERT: generateEphemeralIdentity().certificatePem,
        PLUGIN_MULTIPLEX_GRPC: 'true',
        PLUGIN_UNIX_SOCKET_DIR: tmpdir(),
      },
    });
    // SIGTERM: the plugin then removes its socket directory, as its host would have it do.
    const exited = new Promise((resolve) => plugin.once('exit', resolve));
    const line = await new Promise<string>((resolve) => {
      let text = '';
      plugin.stdout.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
      });
    });
    const rss = (): number => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${plugin.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    const rssBefore = rss();
    let rssMax = rssBefore;
    const socket = connect(line.split('|')[3] as string);
    const sent = floodYamux(socket, kind, 'client');
    const started = Date.now();
    const cutOff = await new Promise<boolean>((resolve) => {
      socket.once('close', () => resolve(true));
      const sample = setInterval(() => {
        rssMax = Math.max(rssMax, rss());
        // Far more than the plugin's caps and the kernel's buffers hold, or a slow machine's patience.
        if (sent() >= 256 * MiB || Date.now() - started >= MAX_MS) {
          clearInterval(sample);
          resolve(false);
        }
      }, 20);
      socket.once('close', () => clearInterval(sample));
    });
    rssMax = Math.max(rssMax, rss());
    const growth = rssMax - rssBefore;
    t.log(`${(sent() / MiB).toFixed(1)} MiB of ${kind}s sent; plugin RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
    t.true(cutOff, 'the plugin ended the session');
    t.true(growth < MAX_RSS_GROWTH, `plugin RSS grew by ${growth} bytes`);
    socket.destroy();
    plugin.kill('SIGTERM');
    await exited;
  });
}
