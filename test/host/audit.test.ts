import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { hostname, tmpdir, userInfo } from 'node:os';
import { basename, join } from 'node:path';
import test from 'ava';
import { launch, openAuditLog, verifyAuditLog } from '../../src/index.js';
import { KV_COOKIE } from '../../examples/kv/kv.js';
import { fakePluginScript, kvPluginScript } from '../helpers/paths.js';

async function auditedLog(t: { teardown(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-audit-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.jsonl');
  return { path, log: await openAuditLog(path) };
}

async function recordTypes(path: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(path, 'utf8');
  return text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

test('audit: a launch records launch, handshake, the pinned peer, kill and exit, in a chain that verifies', async (t) => {
  const { path, log } = await auditedLog(t);
  const plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE, audit: log });
  await plugin.kill();
  await log.close();

  const records = await recordTypes(path);
  const types = records.map((r) => r.type);
  t.deepEqual(types, ['audit-log-opened', 'launch', 'handshake', 'connected', 'kill', 'exit']);
  t.deepEqual(records[1]?.argv, [process.execPath, kvPluginScript]);
  t.is(records[1]?.pid, plugin.pid);
  t.is(records[3]?.peerCertificateSha256, plugin.certificateSha256);
  t.is(records[4]?.method, 'shutdown');
  t.like(records[5], { code: 0, signal: null });
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 6 });
});

test('audit: a refused plugin leaves a refusal record with its code', async (t) => {
  const { path, log } = await auditedLog(t);
  await t.throwsAsync(
    launch({
      command: process.execPath,
      args: [fakePluginScript],
      cookie: KV_COOKIE,
      env: { FAKE_MODE: 'line', FAKE_LINE: '1|1|tcp|192.0.2.10:4000|grpc|' },
      audit: log,
    }),
  );
  await log.close();
  const refusal = (await recordTypes(path)).find((r) => r.type === 'refusal');
  t.is(refusal?.code, 'ADDRESS_NOT_LOOPBACK');
});

test('audit: a launch refused for its options, before anything is made, leaves a refusal record too', async (t) => {
  const { path, log } = await auditedLog(t);
  // Every refusal is recorded (docs/audit.md): a host's bad configuration is one an auditor must see as well.
  await t.throwsAsync(launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE, startTimeoutMs: -1, audit: log }), { code: 'INVALID_OPTIONS' });
  await t.throwsAsync(launch({ name: 'relative', command: 'kv-plugin', cookie: KV_COOKIE, audit: log }), { code: 'INVALID_OPTIONS' });
  // From untyped code: no options at all is a typed error too, not a TypeError.
  await t.throwsAsync(launch(undefined as unknown as Parameters<typeof launch>[0]), { code: 'INVALID_OPTIONS', message: /takes an options object/ });
  await log.close();
  const refusals = (await recordTypes(path)).filter((r) => r.type === 'refusal');
  t.like(refusals, [{ plugin: basename(kvPluginScript), code: 'INVALID_OPTIONS' }, { plugin: 'relative', code: 'INVALID_OPTIONS' }]);
});

test('audit: no record carries the environment or a private key', async (t) => {
  const { path, log } = await auditedLog(t);
  const plugin = await launch({
    command: process.execPath,
    args: [kvPluginScript],
    cookie: KV_COOKIE,
    env: { API_TOKEN: 'token-that-must-not-be-logged' },
    audit: log,
  });
  await plugin.kill();
  await log.close();
  const text = await readFile(path, 'utf8');
  t.notRegex(text, /token-that-must-not-be-logged/);
  t.notRegex(text, /PRIVATE KEY/);
  t.notRegex(text, new RegExp(KV_COOKIE.value));
});

test('audit: each segment names the host process and user that wrote it, and each launch the user its plugin runs as', async (t) => {
  const { path, log } = await auditedLog(t);
  const plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE, audit: log });
  await plugin.kill();
  await log.close();
  // A restart of the host: its segment must name the process that wrote it too.
  await (await openAuditLog(path)).close();

  const records = await recordTypes(path);
  const host = { pid: process.pid, uid: process.geteuid?.(), gid: process.getegid?.(), user: userInfo().username, hostname: hostname() };
  t.like(records.find((r) => r.type === 'audit-log-opened'), { host });
  t.like(records.find((r) => r.type === 'audit-log-reopened'), { host });
  t.like(records.find((r) => r.type === 'launch'), { pid: plugin.pid, uid: process.geteuid?.(), gid: process.getegid?.() });
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: records.length });
});

test('audit: an exit record says whether the host had asked the plugin to stop, so a crash or an outside kill stands out', async (t) => {
  const { path, log } = await auditedLog(t);
  const stopped = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE, audit: log });
  await stopped.kill();
  const crashed = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE, audit: log });
  // Someone else's SIGKILL, as an out-of-memory killer or an intruder would send.
  process.kill(crashed.pid, 'SIGKILL');
  await crashed.exited;
  await crashed.kill();
  await log.close();
  const exits = (await recordTypes(path)).filter((r) => r.type === 'exit');
  t.like(exits[0], { pid: stopped.pid, code: 0, stoppedByHost: true });
  t.like(exits[1], { pid: crashed.pid, signal: 'SIGKILL', stoppedByHost: false });
});

test('audit: handshake and connected records name the plugin process, so two launches of one plugin at once are told apart', async (t) => {
  const { path, log } = await auditedLog(t);
  const plugins = await Promise.all([1, 2].map(() => launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE, audit: log })));
  await Promise.all(plugins.map((plugin) => plugin.kill()));
  await log.close();
  const records = await recordTypes(path);
  for (const plugin of plugins) {
    t.like(records.find((r) => r.type === 'handshake' && r.pid === plugin.pid), { address: plugin.address });
    t.like(records.find((r) => r.type === 'connected' && r.pid === plugin.pid), { peerCertificateSha256: plugin.certificateSha256 });
  }
});
