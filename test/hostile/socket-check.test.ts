// A plugin whose socket path never answers: on a file system the plugin serves itself (FUSE, where any
// user with fusermount may mount one), lstat() waits for the plugin, which need never reply. The host's
// check of the socket then must end at the launch's (or the dial's, or reattach's) deadline, not hold it for good.
// Simulated here by an lstat that never settles for the plugin's sockets: FUSE is not on every CI machine.
// This file is its own process (ava), so the stand-in reaches no other test.
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { isGatehouseError, launch, reattach } from '../../src/index.js';
import { KV_COOKIE } from '../../examples/kv/kv.js';
import { loadCallbackServices, workerPlugin } from '../helpers/callback.js';
import { kvPluginScript } from '../helpers/paths.js';
import { descendantRunning } from './procfs.js';

const fsPromises = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
const realLstat = fsPromises.lstat;
let hangs: RegExp | undefined;
// The live bindings of `import { lstat } from 'node:fs/promises'` follow the CommonJS exports once synced.
fsPromises.lstat = ((path: string, ...rest: []) => (hangs?.test(String(path)) ? new Promise(() => {}) : realLstat(path, ...rest))) as typeof realLstat;
syncBuiltinESMExports();

const { worker } = loadCallbackServices();

test.serial('socket check: a plugin socket that never answers lstat fails the launch at its start timeout, and the plugin is killed', async (t) => {
  t.timeout(30_000, 'the launch waited for the socket check past its start timeout');
  hangs = /[\\/]plugin\.sock$/;
  t.teardown(() => (hangs = undefined));
  const error = await t.throwsAsync(launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE, startTimeoutMs: 3_000 }));
  t.true(isGatehouseError(error, 'CONNECT_FAILED'), String(error));
  t.regex(error?.message ?? '', /plugin socket .*plugin\.sock: no answer from its file system within \d+ ms/);
  t.is(descendantRunning(process.pid, kvPluginScript), undefined, 'the plugin was killed');
});

test.serial('socket check: a brokered socket that never answers lstat fails the dial at its timeout', async (t) => {
  t.timeout(30_000, 'the dial waited for the socket check past its timeout');
  await using plugin = await launch(workerPlugin());
  const { storage_id } = await plugin.client(worker).Offer({});
  hangs = /[\\/]broker-\d+-[^\\/]*$/;
  t.teardown(() => (hangs = undefined));
  const error = await t.throwsAsync(plugin.broker.dial(storage_id, { timeoutMs: 2_000 }));
  t.true(isGatehouseError(error, 'BROKER_FAILED'), String(error));
  t.regex(error?.message ?? '', /no answer from its file system within \d+ ms/);
});

test.serial('socket check: a reattach whose plugin socket never answers lstat fails at its connect timeout', async (t) => {
  t.timeout(40_000, 'reattach waited for the socket check for good');
  await using plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-socket-check-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const record = await plugin.reattachRecord({ privateKeyFile: join(dir, 'host.key') });
  hangs = /[\\/]plugin\.sock$/;
  t.teardown(() => (hangs = undefined));
  const error = await t.throwsAsync(reattach(record));
  t.true(isGatehouseError(error, 'CONNECT_FAILED'), String(error));
  t.regex(error?.message ?? '', /no answer from its file system within \d+ ms/);
});
