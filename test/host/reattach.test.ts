// Reattach: reconnecting to a running plugin with the certificates of the launch that started it.
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { isGatehouseError, launch, reattach, silentLogger, writeReattachRecord, type Plugin } from '../../src/index.js';
import { recordMac, type ReattachRecord } from '../../src/host/reattach-record.js';
import { generateEphemeralIdentity } from '../../src/tls/certificate.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { kvPluginScript } from '../helpers/paths.js';
import { isAlive } from '../helpers/process.js';

const execFileAsync = promisify(execFile);
const kvService = loadKVService();
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-reattach-test-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const fresh = (name: string): string => join(dir, `${counter++}-${name}`);

/** `record` with `changes`, made again with the host's key, as the host itself could. */
function remade(record: ReattachRecord, keyFile: string, changes: Partial<ReattachRecord>): ReattachRecord {
  const { mac: _mac, ...fields } = { ...record, ...changes };
  return { ...fields, mac: recordMac(fields, readFileSync(keyFile, 'utf8')) };
}

async function kvPlugin(t: { teardown(fn: () => unknown): void }): Promise<Plugin> {
  const plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
  t.teardown(() => plugin.kill());
  return plugin;
}

test('reattach: a second Plugin reconnects with the pinned certificates and controls the same process', async (t) => {
  const first = await kvPlugin(t);
  await first.client(kvService).Put({ key: 'k', value: Buffer.from('before reattach') });
  const keyFile = fresh('host.key');
  const record = await first.reattachRecord({ privateKeyFile: keyFile });
  t.is(statSync(keyFile).mode & 0o777, 0o600);
  t.regex(readFileSync(keyFile, 'utf8'), /PRIVATE KEY/);
  t.false(JSON.stringify(record).includes('PRIVATE KEY'), 'the record itself holds no key');
  const recordFile = fresh('record.json');
  await writeReattachRecord(recordFile, record);
  t.is(statSync(recordFile).mode & 0o777, 0o600);

  const second = await reattach(recordFile);
  t.is(second.pid, first.pid);
  t.is(second.certificateSha256, first.certificateSha256);
  t.is((await second.client(kvService).Get({ key: 'k' })).value.toString(), 'before reattach');
  await second.kill();
  t.deepEqual(await first.exited, { code: 0, signal: null }, 'the reattached Plugin stopped it with Shutdown');
  t.false(isAlive(first.pid));
});

test('reattach: a reattached plugin stopped by the host that launched it is reported with an unknown exit status, not "exit code null"', async (t) => {
  const first = await kvPlugin(t);
  const keyFile = fresh('host.key');
  const warnings: string[] = [];
  const logger = { ...silentLogger, warn: (_fields: Record<string, unknown>, message: string) => void warnings.push(message) };
  const second = await reattach(await first.reattachRecord({ privateKeyFile: keyFile }), { logger });
  await first.kill();
  t.deepEqual(await second.exited, { code: null, signal: null });
  t.deepEqual(warnings, ['plugin exited unexpectedly (exit status unknown: not started by this process)']);
});

test('reattach: another host process reattaches from the record file', async (t) => {
  const first = await kvPlugin(t);
  await first.client(kvService).Put({ key: 'k', value: Buffer.from('across processes') });
  const recordFile = fresh('record.json');
  await writeReattachRecord(recordFile, await first.reattachRecord({ privateKeyFile: fresh('host.key') }));
  const script = fileURLToPath(new URL('../fixtures/reattach-host.js', import.meta.url));
  const { stdout } = await execFileAsync(process.execPath, [script, recordFile, 'k'], { timeout: 30_000 });
  t.deepEqual(JSON.parse(stdout), { value: 'across processes', pid: first.pid });
});

test('reattach: a reattach that fails after finding the process leaves nothing running: the host process still ends by itself', async (t) => {
  // A failed reattach left its poll of the plugin's process running, not unref'd: a host that tried could not exit
  // while the plugin lived, and each retry added another.
  const first = await kvPlugin(t);
  const keyFile = fresh('host.key');
  const recordFile = fresh('record.json');
  await writeReattachRecord(recordFile, remade(await first.reattachRecord({ privateKeyFile: keyFile }), keyFile, { address: join(first.socketDir, 'gone.sock') }));
  const script = fileURLToPath(new URL('../fixtures/reattach-host.js', import.meta.url));
  const outcome = await execFileAsync(process.execPath, [script, recordFile, 'k'], { timeout: 20_000 }).then(
    () => ({ stdout: '', killed: false }),
    (error: { stdout: string; killed: boolean }) => error,
  );
  t.false(outcome.killed, 'the host process ended by itself while the plugin still ran');
  t.deepEqual(JSON.parse(outcome.stdout), { code: 'CONNECT_FAILED' });
  t.true(isAlive(first.pid));
});

test('reattach: without the private key, or with a key file others can read, it is refused', async (t) => {
  const first = await kvPlugin(t);
  const noKey = await first.reattachRecord();
  t.is(noKey.privateKeyFile, undefined);
  const missing = await t.throwsAsync(reattach(noKey));
  t.true(isGatehouseError(missing, 'REATTACH_FAILED'), String(missing));
  t.regex(missing?.message ?? '', /needs the host's private key/);

  const keyFile = fresh('host.key');
  const record = await first.reattachRecord({ privateKeyFile: keyFile });
  chmodSync(keyFile, 0o644);
  const leaked = await t.throwsAsync(reattach(record));
  t.regex(leaked?.message ?? '', /open to others/);
});

test('reattach: a key file is only ever created, never written through an existing file or symlink', async (t) => {
  // Attack: a file (or symlink) planted at the key path, to capture the host's key or clobber a file.
  const first = await kvPlugin(t);
  const planted = fresh('planted.key');
  writeFileSync(planted, 'not yours', { mode: 0o644 });
  const error = await t.throwsAsync(first.reattachRecord({ privateKeyFile: planted }));
  t.true(isGatehouseError(error, 'REATTACH_FAILED'), String(error));
  t.is(readFileSync(planted, 'utf8'), 'not yours');
});

test("reattach: another identity's key, or a pid that now names another process, is refused", async (t) => {
  const first = await kvPlugin(t);
  const record = await first.reattachRecord();
  const other = generateEphemeralIdentity();
  const wrongKey = await t.throwsAsync(reattach(record, { privateKeyPem: other.privateKeyPem }));
  t.regex(wrongKey?.message ?? '', /do not belong together/);

  // Attack: a stale record whose pid the kernel gave to another process, which we must never signal.
  const keyFile = fresh('host.key');
  const withKey = await first.reattachRecord({ privateKeyFile: keyFile });
  t.truthy(withKey.processStartTime, 'Linux records the start time');
  const reused = await t.throwsAsync(reattach(remade(withKey, keyFile, { processStartTime: '1' })));
  t.true(isGatehouseError(reused, 'REATTACH_FAILED'), String(reused));
  t.regex(reused?.message ?? '', /no longer running/);
});

test('reattach: a multiplexed plugin cannot be reattached, as in go-plugin', async (t) => {
  const plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE, multiplexBroker: true });
  t.teardown(() => plugin.kill());
  const error = await t.throwsAsync(plugin.reattachRecord());
  t.true(isGatehouseError(error, 'REATTACH_FAILED'), String(error));
});

test('reattach: a record file another user owns, others may write, or a symlink is refused', async (t) => {
  // Attack: another local user writes (or plants) the record, to send the host's calls to their server.
  const first = await kvPlugin(t);
  const record = await first.reattachRecord({ privateKeyFile: fresh('host.key') });
  const writable = fresh('record.json');
  await writeReattachRecord(writable, record);
  chmodSync(writable, 0o666);
  const openError = await t.throwsAsync(reattach(writable));
  t.true(isGatehouseError(openError, 'REATTACH_FAILED'), String(openError));
  t.regex(openError?.message ?? '', /reattach record .* is open to others/);

  const linked = fresh('record-link.json');
  chmodSync(writable, 0o600);
  symlinkSync(writable, linked);
  t.true(isGatehouseError(await t.throwsAsync(reattach(linked)), 'REATTACH_FAILED'), 'a symlink is not followed');

  if (process.getuid?.() === 0) {
    chownSync(writable, 65534, 65534);
    const owned = await t.throwsAsync(reattach(writable));
    t.regex(owned?.message ?? '', /belongs to uid 65534/);
  }
});

test('reattach: a record changed without the host key, or lacking the start time, is refused before any connection', async (t) => {
  // Attack: a record edited to name another server (pinned to the host's public certificate), another
  // process to signal or another directory to remove.
  const first = await kvPlugin(t);
  const record = await first.reattachRecord({ privateKeyFile: fresh('host.key') });
  const other = generateEphemeralIdentity();
  for (const changes of [
    { address: '/tmp/elsewhere.sock' },
    { pluginCertificate: other.certificatePem },
    { pid: process.pid },
    { socketDir: '/home' },
  ] as Partial<ReattachRecord>[]) {
    const error = await t.throwsAsync(reattach({ ...record, ...changes }));
    t.true(isGatehouseError(error, 'REATTACH_FAILED'), String(error));
    t.regex(error?.message ?? '', /not made with this host key/, JSON.stringify(Object.keys(changes)));
  }
  const { processStartTime: _start, ...noStart } = record;
  const missing = await t.throwsAsync(reattach(noStart as ReattachRecord));
  t.regex(missing?.message ?? '', /processStartTime must be given/);
  t.true(isAlive(first.pid), 'nothing was signalled');
});

test('reattach: kill() never removes a directory gatehouse did not make, even for a record made with the key', async (t) => {
  // Attack: a record (file or object) whose socketDir names a directory kill() would remove recursively.
  const keep = mkdtempSync(join(dir, 'precious-'));
  writeFileSync(join(keep, 'data'), 'keep me');
  const target = mkdtempSync(join(dir, 'target-'));
  writeFileSync(join(target, 'data'), 'keep me too');
  const lookalike = join(dir, 'gatehouse-abc123');
  symlinkSync(target, lookalike);
  const writableDir = join(dir, 'gatehouse-wrt123');
  mkdirSync(writableDir);
  chmodSync(writableDir, 0o777);
  for (const socketDir of [keep, lookalike, writableDir]) {
    const first = await kvPlugin(t);
    const keyFile = fresh('host.key');
    const record = remade(await first.reattachRecord({ privateKeyFile: keyFile }), keyFile, { socketDir });
    const second = await reattach(record);
    await second.kill();
    t.true(existsSync(socketDir), `${socketDir} is still there`);
  }
  t.is(readFileSync(join(keep, 'data'), 'utf8'), 'keep me');
  t.is(readFileSync(join(target, 'data'), 'utf8'), 'keep me too');
});
