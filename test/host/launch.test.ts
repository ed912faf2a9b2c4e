import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { GatehouseError, isGatehouseError, launch, verifyAuditLog, type AuditLog, type LaunchOptions } from '../../src/index.js';
import { tempDir } from '../discover/temp-dir.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { fakePluginScript, kvPluginScript } from '../helpers/paths.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { isAlive, waitUntil } from '../helpers/process.js';

const execFileAsync = promisify(execFile);
const kvService = loadKVService();

function fake(mode: string, extra: Partial<LaunchOptions> = {}, env: Record<string, string> = {}): LaunchOptions {
  return {
    command: process.execPath,
    args: [fakePluginScript],
    cookie: KV_COOKIE,
    ...extra,
    env: { FAKE_MODE: mode, ...env },
  };
}



test('launch: a plugin runs over mutual TLS in a private socket directory and stops on Shutdown', async (t) => {
  const plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
  t.regex(plugin.certificateSha256 ?? '', /^[0-9a-f]{64}$/);
  t.is(plugin.network, 'unix');
  t.true(plugin.address.startsWith(plugin.socketDir + '/'));
  t.is(statSync(plugin.socketDir).mode & 0o777, 0o700, 'no other user can reach the socket directory');

  const kv = plugin.client(kvService);
  await kv.Put({ key: 'k', value: Buffer.from([0, 1, 2, 255]) });
  t.deepEqual([...(await kv.Get({ key: 'k' })).value], [0, 1, 2, 255]);

  const status = await plugin.kill();
  t.deepEqual(status, { code: 0, signal: null }, 'the plugin exited by itself after Shutdown');
  t.false(existsSync(plugin.socketDir));
  t.false(isAlive(plugin.pid));
});

test('launch: `await using` kills the plugin at the end of the block', async (t) => {
  let pid = 0;
  {
    await using plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
    pid = plugin.pid;
    t.true(isAlive(pid));
  }
  t.false(isAlive(pid));
});

test('launch: the host environment does not reach the plugin, only what the caller lists', async (t) => {
  // Attack: a plugin reading the host's secrets (tokens, cloud credentials) out of its environment.
  process.env.GATEHOUSE_TEST_HOST_SECRET = 'hunter2';
  t.teardown(() => delete process.env.GATEHOUSE_TEST_HOST_SECRET);
  await using plugin = await launch(fake('env-kv', {}, { GIVEN: 'passed on purpose' }));
  const kv = plugin.client(kvService);
  t.is((await kv.Get({ key: 'GATEHOUSE_TEST_HOST_SECRET' })).value.toString(), '');
  t.is((await kv.Get({ key: 'PATH' })).value.toString(), '');
  t.is((await kv.Get({ key: 'GIVEN' })).value.toString(), 'passed on purpose');
  t.regex((await kv.Get({ key: 'PLUGIN_CLIENT_CERT' })).value.toString(), /^-----BEGIN CERTIFICATE-----/);
  t.notRegex((await kv.Get({ key: 'PLUGIN_CLIENT_CERT' })).value.toString(), /PRIVATE KEY/);
});

test('launch: a command that is not absolute is refused before anything runs', async (t) => {
  const error = await t.throwsAsync(launch({ command: 'node', cookie: KV_COOKIE }));
  t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
});

test('launch: a timeout or grace past what a timer holds (2^31 - 1 ms) is refused, not turned into 1 ms', async (t) => {
  for (const options of [{ startTimeoutMs: 2 ** 31 }, { killGraceMs: 30 * 86_400_000 }]) {
    const error = await t.throwsAsync(launch({ command: process.execPath, cookie: KV_COOKIE, ...options }));
    t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
    t.regex(error?.message ?? '', /must be a positive number of ms, at most 2147483647/);
  }
});

test('launch: with an audit log that can no longer record, nothing is started, saying why', async (t) => {
  // Fail closed: after a full disk stopped the log, launches (a supervisor's restarts among them) ran unaudited.
  const dir = await tempDir(t);
  const marker = join(dir, 'ran');
  const script = join(dir, 'plugin.sh');
  await writeFile(script, `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
  const failure = new GatehouseError('AUDIT_WRITE_FAILED', 'audit log /var/log/x: ENOSPC: no space left on device');
  const audit: AuditLog = { record: () => undefined, flush: () => Promise.reject(failure), close: () => Promise.reject(failure), failure };
  const error = await t.throwsAsync(launch({ command: script, cookie: KV_COOKIE, audit }));
  t.true(isGatehouseError(error, 'AUDIT_WRITE_FAILED'), String(error));
  t.regex(error?.message ?? '', /the audit log cannot record \(.*ENOSPC.*\), and nothing is started unaudited/);
  t.false(existsSync(marker), 'the plugin never ran');
});

test('launch: a command that does not exist or cannot be run is SPAWN_FAILED, naming it', async (t) => {
  const dir = await tempDir(t);
  const notExecutable = join(dir, 'plugin');
  await writeFile(notExecutable, '#!/bin/sh\n', { mode: 0o644 });
  for (const command of [join(dir, 'missing'), notExecutable]) {
    const error = await t.throwsAsync<GatehouseError>(launch({ command, cookie: KV_COOKIE }));
    t.is(error?.code, 'SPAWN_FAILED', command);
    t.true(error?.message.includes(command));
  }
});

test('launch: exit before the handshake reports the exit code and the last stderr lines', async (t) => {
  const error = await t.throwsAsync(launch(fake('exit-early')));
  t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
  t.regex(error?.message ?? '', /exit code 3/);
  t.regex(error?.message ?? '', /boom: configuration file missing/);
  // Programs read the same facts from details, never from the message.
  const details = (error as GatehouseError).details;
  t.deepEqual(details.exitStatus, { code: 3, signal: null });
  t.deepEqual(details.stderrTail, ['starting up', 'boom: configuration file missing']);
});

test('launch: aborting during the handshake kills the plugin at once', async (t) => {
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort(), 200);
  const error = await t.throwsAsync(launch(fake('silent', { startTimeoutMs: 50_000, signal: controller.signal })));
  t.true(isGatehouseError(error, 'START_ABORTED'), String(error));
  // Far below the start timeout, with room for a loaded machine.
  t.true(Date.now() - started < 20_000, `took ${Date.now() - started} ms: it waited for the start timeout`);
});

test('launch: a signal aborted before the launch spawns nothing', async (t) => {
  const controller = new AbortController();
  controller.abort();
  const records: Record<string, unknown>[] = [];
  const audit = { record: (entry: Record<string, unknown>) => records.push(entry) } as unknown as LaunchOptions['audit'];
  const error = await t.throwsAsync(launch(fake('silent', { signal: controller.signal, audit })));
  t.true(isGatehouseError(error, 'START_ABORTED'), String(error));
  t.deepEqual(records.map((entry) => entry.type), ['refusal'], 'no launch record: nothing was spawned');
});

test('calls: a failed call carries its gRPC status code in details', async (t) => {
  await using plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
  const error = await t.throwsAsync(plugin.client(kvService).Get({ key: 'k' }, { timeoutMs: 0 }));
  t.true(isGatehouseError(error, 'CALL_FAILED'), String(error));
  t.is((error as GatehouseError).details.grpcCode, 4 /* DEADLINE_EXCEEDED */);
  t.regex(error?.message ?? '', /^kv\.KV\/Get failed: DEADLINE_EXCEEDED/);
  // Whose deadline it was, and what to do: the status alone says neither.
  t.regex(error?.message ?? '', /did not answer within the call's deadline \(timeoutMs, or a supervisor's callTimeoutMs: 0 ms\).*raise the deadline/);
});

test('launch: a plugin that prints no handshake is killed after the start timeout', async (t) => {
  const started = Date.now();
  const error = await t.throwsAsync(launch(fake('silent', { startTimeoutMs: 300 })));
  t.true(isGatehouseError(error, 'START_TIMEOUT'), String(error));
  t.true(Date.now() - started < 20_000, `took ${Date.now() - started} ms: the timeout did not end the launch`);
});

test('launch: an endless handshake line is cut off at the limit, not buffered', async (t) => {
  const error = await t.throwsAsync(launch(fake('endless-line', { startTimeoutMs: 10_000 })));
  t.true(isGatehouseError(error, 'HANDSHAKE_TOO_LONG'), String(error));
});

test('launch: a non-loopback TCP address is refused before any connection attempt', async (t) => {
  // Attack: a plugin steering the host's TLS client (and its certificate) to another machine.
  const error = await t.throwsAsync(launch(fake('line', {}, { FAKE_LINE: '1|1|tcp|192.0.2.10:4000|grpc|' })));
  t.true(isGatehouseError(error, 'ADDRESS_NOT_LOOPBACK'), String(error));
});

test('launch: a net/rpc plugin gets a clear "not supported" error', async (t) => {
  const error = await t.throwsAsync(launch(fake('line', {}, { FAKE_LINE: '1|1|unix|/tmp/x.sock|netrpc|' })));
  t.true(isGatehouseError(error, 'NETRPC_UNSUPPORTED'), String(error));
});

test('launch: a plugin that offers no certificate is refused unless plaintext was asked for by name', async (t) => {
  // Attack: a downgrade to plaintext, where any local process could read or forge the calls.
  const error = await t.throwsAsync(launch(fake('line', {}, { FAKE_LINE: '1|1|unix|/tmp/gatehouse-none.sock|grpc|' })));
  t.true(isGatehouseError(error, 'PLAINTEXT_REFUSED'), String(error));
});

test('launch: the five-field line of go-plugin\'s docs is refused by default, saying no certificate was offered and how to proceed', async (t) => {
  // Attack: a downgrade to plaintext through a line too short to carry a certificate.
  const error = await t.throwsAsync(launch(fake('line', {}, { FAKE_LINE: '1|1|tcp|127.0.0.1:1234|grpc' })));
  t.true(isGatehouseError(error, 'PLAINTEXT_REFUSED'), String(error));
  t.regex(error?.message ?? '', /offered no TLS certificate/);
  t.regex(error?.message ?? '', /insecurePlaintext: true/);
  t.regex(error?.message ?? '', /--insecure/);
  // What the author of a plugin in another language must change, and where it is written down.
  t.regex(error?.message ?? '', /PLUGIN_CLIENT_CERT/);
  t.regex(error?.message ?? '', /sixth field/);
  t.regex(error?.message ?? '', /docs\/other-languages\.md/);
});

test('launch: plaintext works when both sides asked for it by name', async (t) => {
  await using plugin = await launch(fake('env-kv', { insecurePlaintext: true }, { FAKE_ALLOW_PLAINTEXT: '1' }));
  t.is(plugin.certificateSha256, undefined);
  t.is((await plugin.client(kvService).Get({ key: 'FAKE_MODE' })).value.toString(), 'env-kv');
});

test('launch: a server whose certificate differs from the one in the handshake line is refused', async (t) => {
  // Attack: a process that answers on the plugin's socket with a certificate of its own.
  const error = await t.throwsAsync(launch(fake('wrong-certificate')));
  t.true(isGatehouseError(error, 'CERTIFICATE_MISMATCH'), String(error));
});

test('launch: calls fail fast with PLUGIN_EXITED once the plugin has died', async (t) => {
  const plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
  const kv = plugin.client(kvService);
  process.kill(plugin.pid, 'SIGKILL');
  await plugin.exited;
  const error = await t.throwsAsync(kv.Get({ key: 'x' }));
  // Fails before any RPC is attempted: an attempted call would end as CALL_FAILED (UNAVAILABLE).
  t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
  t.regex(error?.message ?? '', /SIGKILL/);
  t.deepEqual((error as GatehouseError).details.exitStatus, { code: null, signal: 'SIGKILL' });
  await plugin.kill();
  t.false(existsSync(plugin.socketDir));
});

test('kill: a plugin that ignores Shutdown and SIGTERM is SIGKILLed after the grace, with its group', async (t) => {
  const plugin = await launch(fake('stubborn', { killGraceMs: 200 }));
  const started = Date.now();
  const status = await plugin.kill();
  t.is(status.signal, 'SIGKILL');
  t.true(Date.now() - started >= 400, 'both graces were waited out');
  t.true(Date.now() - started < 20_000, 'SIGKILL ended it; nothing waited forever');
  t.false(isAlive(plugin.pid));
});

test('launch: stdout after the handshake is passed on, stderr lines are logged', async (t) => {
  const logger = recordingLogger();
  const stdout: string[] = [];
  await using plugin = await launch(fake('chatty', { logger, onStdoutLine: (line) => stdout.push(line) }));
  t.true(await waitUntil(() => stdout.length > 0, 2000));
  t.deepEqual(stdout, ['a line on stdout after the handshake']);
  t.true(await waitUntil(() => logger.records.some((r) => r.message === 'a plain stderr line'), 2000));
  const plain = logger.records.find((r) => r.message === 'a plain stderr line');
  t.is(plain?.level, 'debug', 'a line that is not hclog JSON is logged at debug');
  t.is(plain?.fields.plugin, plugin.name);
});

test('launch: the application protocol version mismatch names both sides', async (t) => {
  const error = await t.throwsAsync(launch(fake('version-2-only', { protocolVersions: [1] })));
  t.true(isGatehouseError(error, 'PROTOCOL_VERSION_MISMATCH'), String(error));
  t.regex(error?.message ?? '', /2/);
  t.regex(error?.message ?? '', /1/);
});

test('kill: every live plugin is killed when the host process exits or is signalled', async (t) => {
  const hostScript = fileURLToPath(new URL('../fixtures/host-that-dies.js', import.meta.url));
  for (const ending of ['exit', 'SIGTERM', 'SIGINT']) {
    const { stdout } = await execFileAsync(process.execPath, [hostScript, ending], { timeout: 20_000 }).catch(
      (error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }),
    );
    const { pid, socketDir } = JSON.parse(stdout.trim()) as { pid: number; socketDir: string };
    t.true(await waitUntil(() => !isAlive(pid), 10_000), `plugin ${pid} outlived a host that ended by ${ending}`);
    t.false(existsSync(socketDir), `socket directory left behind after ${ending}`);
  }
});

test('kill: a host that exits or is signalled records the kill of each live plugin in its audit log, which still verifies', async (t) => {
  const hostScript = fileURLToPath(new URL('../fixtures/host-that-dies.js', import.meta.url));
  for (const ending of ['exit', 'SIGTERM', 'SIGINT']) {
    const auditPath = join(await tempDir(t), 'audit.jsonl');
    const { stdout } = await execFileAsync(process.execPath, [hostScript, ending, auditPath], { timeout: 20_000 }).catch(
      (error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }),
    );
    const { pid } = JSON.parse(stdout.trim()) as { pid: number };
    const records = (await readFile(auditPath, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    t.like(records.at(-1), { type: 'kill', pid, method: 'SIGKILL', reason: 'host exiting' }, `after ${ending}`);
    t.like(await verifyAuditLog(auditPath), { ok: true }, `after ${ending}`);
  }
});

test('kill: a host that exits the moment its launch returns, its last records still being written, records the kill after them', async (t) => {
  const hostScript = fileURLToPath(new URL('../fixtures/host-that-dies.js', import.meta.url));
  const auditPath = join(await tempDir(t), 'audit.jsonl');
  const { stdout } = await execFileAsync(process.execPath, [hostScript, 'exit-now', auditPath], { timeout: 20_000 });
  const { pid } = JSON.parse(stdout.trim()) as { pid: number };
  const records = (await readFile(auditPath, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  t.deepEqual(records.map((record) => record.type), ['audit-log-opened', 'launch', 'handshake', 'connected', 'kill']);
  t.like(records.at(-1), { type: 'kill', pid, method: 'SIGKILL', reason: 'host exiting' });
  t.like(await verifyAuditLog(auditPath), { ok: true });
});

/** Connections the plugin accepted on its socket: /proc/net/unix names the path on its end of each (state 03, connected). */
async function connectionsTo(address: string): Promise<number> {
  const table = await readFile('/proc/net/unix', 'utf8');
  return table.split('\n').filter((line) => line.endsWith(` ${address}`) && line.trim().split(/\s+/)[5] === '03').length;
}

test('connection: the health check, calls, broker and stdio streams share one connection; grpcClient() opens its channel on first use, and never after the exit', async (t) => {
  const plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
  t.teardown(() => plugin.kill());
  const kv = plugin.client(kvService);
  await kv.Put({ key: 'k', value: Buffer.from('v') });
  await plugin.checkHealth(5000);
  t.is(await connectionsTo(plugin.address), 1, 'one socket carries every call and stream of the plugin');

  const generic = plugin.grpcClient(kvService) as unknown as { Get(request: object, callback: (error: Error | null, response?: { value: Buffer }) => void): void; getChannel(): { getConnectivityState(connect: boolean): number } };
  const got = await new Promise<{ value: Buffer } | undefined>((resolve, reject) => generic.Get({ key: 'k' }, (error, response) => (error ? reject(error) : resolve(response))));
  t.is(got?.value.toString(), 'v');
  t.is(await connectionsTo(plugin.address), 2, "grpcClient()'s channel is a connection of its own");

  await plugin.kill();
  const late = plugin.grpcClient(kvService) as unknown as typeof generic;
  t.is(late.getChannel().getConnectivityState(false), grpc.connectivityState.SHUTDOWN, 'no channel is left retrying the socket of an exited plugin');
});
