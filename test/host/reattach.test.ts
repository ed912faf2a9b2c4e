// Reattach: reconnecting to a running plugin with the certificates of the launch that started it.
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { isGatehouseError, launch, reattach, writeReattachRecord, type Plugin } from '../../src/index.js';
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

test('reattach: another host process reattaches from the record file', async (t) => {
  const first = await kvPlugin(t);
  await first.client(kvService).Put({ key: 'k', value: Buffer.from('across processes') });
  const recordFile = fresh('record.json');
  await writeReattachRecord(recordFile, await first.reattachRecord({ privateKeyFile: fresh('host.key') }));
  const script = fileURLToPath(new URL('../fixtures/reattach-host.js', import.meta.url));
  const { stdout } = await execFileAsync(process.execPath, [script, recordFile, 'k'], { timeout: 30_000 });
  t.deepEqual(JSON.parse(stdout), { value: 'across processes', pid: first.pid });
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
  t.regex(leaked?.message ?? '', /readable by others/);
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
  const reused = await t.throwsAsync(reattach({ ...withKey, processStartTime: '1' }));
  t.true(isGatehouseError(reused, 'REATTACH_FAILED'), String(reused));
  t.regex(reused?.message ?? '', /no longer running/);
});

test('reattach: a multiplexed plugin cannot be reattached, as in go-plugin', async (t) => {
  const plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE, multiplexBroker: true });
  t.teardown(() => plugin.kill());
  const error = await t.throwsAsync(plugin.reattachRecord());
  t.true(isGatehouseError(error, 'REATTACH_FAILED'), String(error));
});
