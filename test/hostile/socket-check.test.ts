// A plugin whose socket path never answers: on a file system the plugin serves itself (FUSE, where any
// user with fusermount may mount one), lstat() waits for the plugin, which need never reply. The host's
// check of the socket then must end at the launch's (or the dial's, or reattach's) deadline, not hold it for good.
// Simulated here by an lstat that never settles for the plugin's sockets: FUSE is not on every CI machine.
// This file is its own process (ava), so the stand-in reaches no other test.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { isGatehouseError, launch, reattach } from '../../src/index.js';
import { checkSocketOwnership } from '../../src/host/connection.js';
import { KV_COOKIE } from '../../examples/kv/kv.js';
import { loadCallbackServices, workerPlugin } from '../helpers/callback.js';
import { kvPluginScript } from '../helpers/paths.js';
import { descendantRunning } from './procfs.js';

const fsPromises = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
const realLstat = fsPromises.lstat;
let hangs: RegExp | undefined;
/** Every lstat the stand-in was asked for, and the answers of those it holds. */
const asked: string[] = [];
const held: Array<() => void> = [];
// The live bindings of `import { lstat } from 'node:fs/promises'` follow the CommonJS exports once synced.
fsPromises.lstat = ((path: string, ...rest: []) => {
  asked.push(String(path));
  if (!hangs?.test(String(path))) return realLstat(path, ...rest);
  return new Promise((_, reject) => held.push(() => reject(Object.assign(new Error(`ENOTCONN: ${String(path)}`), { code: 'ENOTCONN' }))));
}) as typeof realLstat;
syncBuiltinESMExports();

/** What FUSE does when the daemon behind a mount dies: every lstat it held fails (ENOTCONN). */
function answerHeld(): void {
  hangs = undefined;
  for (const answer of held.splice(0)) answer();
}

const { worker } = loadCallbackServices();

test.serial('socket check: a plugin socket that never answers lstat fails the launch at its start timeout, and the plugin is killed', async (t) => {
  t.timeout(30_000, 'the launch waited for the socket check past its start timeout');
  hangs = /[\\/]plugin\.sock$/;
  t.teardown(answerHeld);
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
  t.teardown(answerHeld);
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
  t.teardown(answerHeld);
  const error = await t.throwsAsync(reattach(record));
  t.true(isGatehouseError(error, 'CONNECT_FAILED'), String(error));
  t.regex(error?.message ?? '', /no answer from its file system within \d+ ms/);
});

test.serial('socket check: lstat calls that never answer hold at most half of the I/O pool; further checks fail at once until one answers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-socket-check-'));
  const server = createServer();
  const socket = join(dir, 'live.sock');
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(async () => {
    answerHeld();
    server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const uid = process.getuid?.();
  await t.notThrowsAsync(checkSocketOwnership({ network: 'unix', address: socket }, uid, Date.now() + 5_000), 'a live socket passes');

  // Two unanswered lstats (libuv's pool has four threads unless UV_THREADPOOL_SIZE says otherwise): each holds a thread.
  hangs = /[\\/]fuse-\d\.sock$/;
  for (const n of [1, 2]) {
    const error = await t.throwsAsync(checkSocketOwnership({ network: 'unix', address: join(dir, `fuse-${n}.sock`) }, uid, Date.now() + 50));
    t.regex(error?.message ?? '', /no answer from its file system within \d+ ms/);
  }

  // Attack: each further socket a hostile plugin names would hold another thread, until none is left for the
  // host's files, its audit log and every other plugin. The host asks the file system no more.
  asked.length = 0;
  const refused = await t.throwsAsync(checkSocketOwnership({ network: 'unix', address: socket }, uid, Date.now() + 5_000));
  t.true(isGatehouseError(refused, 'CONNECT_FAILED'), String(refused));
  t.regex(refused?.message ?? '', /2 earlier socket checks .*fuse-1\.sock.* still wait/);
  t.regex(refused?.message ?? '', /kill the plugins that named them/);
  t.deepEqual(asked, [], 'no lstat was asked for');

  // The plugin behind them dies: its file system answers, the threads come back, and checks resume.
  answerHeld();
  await new Promise((resolve) => setImmediate(resolve));
  await t.notThrowsAsync(checkSocketOwnership({ network: 'unix', address: socket }, uid, Date.now() + 5_000));
});
