// A plugin whose socket path never answers: on a file system the plugin serves itself (FUSE, where any
// user with fusermount may mount one), every lookup on the path waits for the plugin, which need never reply. The host's
// check of the socket then must end at the launch's (or the dial's, or reattach's) deadline, not hold it for good.
// Simulated here by an lstat and a link that never settle for the plugin's sockets: FUSE is not on every CI machine.
// This file is its own process (ava), so the stand-in reaches no other test.
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test from 'ava';
import { isGatehouseError, launch, reattach } from '../../src/index.js';
import { linkPluginSocket } from '../../src/host/plugin-socket.js';
import { KV_COOKIE } from '../../examples/kv/kv.js';
import { loadCallbackServices, workerPlugin } from '../helpers/callback.js';
import { kvPluginScript } from '../helpers/paths.js';
import { descendantRunning } from './procfs.js';

const fsPromises = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
const realLstat = fsPromises.lstat;
const realLink = fsPromises.link;
let hangs: RegExp | undefined;
/** Every path the stand-ins were asked to walk (lstat's, link's source), and the answers of the calls they hold. */
const asked: string[] = [];
const held: Array<() => void> = [];
function hold(path: string): Promise<never> {
  return new Promise((_, reject) => held.push(() => reject(Object.assign(new Error(`ENOTCONN: ${path}`), { code: 'ENOTCONN' }))));
}
// The live bindings of `import { lstat } from 'node:fs/promises'` follow the CommonJS exports once synced.
fsPromises.lstat = ((path: string, ...rest: []) => {
  asked.push(String(path));
  return hangs?.test(String(path)) ? hold(String(path)) : realLstat(path, ...rest);
}) as typeof realLstat;
fsPromises.link = ((existing: string, created: string) => {
  asked.push(String(existing));
  return hangs?.test(String(existing)) ? hold(String(existing)) : realLink(existing, created);
}) as typeof realLink;
syncBuiltinESMExports();

/** What FUSE does when the daemon behind a mount dies: every call it held fails (ENOTCONN). */
function answerHeld(): void {
  hangs = undefined;
  for (const answer of held.splice(0)) answer();
}

const { worker } = loadCallbackServices();

test.serial('socket check: a plugin socket whose file system never answers fails the launch at its start timeout, and the plugin is killed', async (t) => {
  t.timeout(30_000, 'the launch waited for the socket check past its start timeout');
  hangs = /[\\/]plugin\.sock$/;
  t.teardown(answerHeld);
  const error = await t.throwsAsync(launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE, startTimeoutMs: 3_000 }));
  t.true(isGatehouseError(error, 'CONNECT_FAILED'), String(error));
  t.regex(error?.message ?? '', /plugin socket .*plugin\.sock: no answer from its file system within \d+ ms/);
  t.is(descendantRunning(process.pid, kvPluginScript), undefined, 'the plugin was killed');
});

test.serial('socket check: a brokered socket whose file system never answers fails the dial at its timeout', async (t) => {
  t.timeout(30_000, 'the dial waited for the socket check past its timeout');
  await using plugin = await launch(workerPlugin());
  const { storage_id } = await plugin.client(worker).Offer({});
  hangs = /[\\/]broker-\d+-[^\\/]*$/;
  t.teardown(answerHeld);
  const error = await t.throwsAsync(plugin.broker.dial(storage_id, { timeoutMs: 2_000 }));
  t.true(isGatehouseError(error, 'BROKER_FAILED'), String(error));
  t.regex(error?.message ?? '', /no answer from its file system within \d+ ms/);
});

test.serial('socket check: a reattach whose plugin socket is on a file system that never answers fails at its connect timeout', async (t) => {
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

test.serial('socket check: checks that never answer hold at most half of the I/O pool; further checks fail at once until one answers', async (t) => {
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
  await (await linkPluginSocket({ network: 'unix', address: socket }, uid, Date.now() + 5_000)).release();

  // Two unanswered walks (libuv's pool has four threads unless UV_THREADPOOL_SIZE says otherwise): each holds a thread.
  hangs = /[\\/]fuse-\d\.sock$/;
  for (const n of [1, 2]) {
    const error = await t.throwsAsync(linkPluginSocket({ network: 'unix', address: join(dir, `fuse-${n}.sock`) }, uid, Date.now() + 50));
    t.regex(error?.message ?? '', /no answer from its file system within \d+ ms/);
  }

  // Attack: each further socket a hostile plugin names would hold another thread, until none is left for the
  // host's files, its audit log and every other plugin. The host asks the file system no more.
  asked.length = 0;
  const refused = await t.throwsAsync(linkPluginSocket({ network: 'unix', address: socket }, uid, Date.now() + 5_000));
  t.true(isGatehouseError(refused, 'CONNECT_FAILED'), String(refused));
  t.regex(refused?.message ?? '', /2 earlier socket checks .*fuse-1\.sock.* still wait/);
  t.regex(refused?.message ?? '', /kill the plugins that named them/);
  t.deepEqual(asked, [], 'nothing on that path was asked of the file system');

  // The plugin behind them dies: its file system answers, the threads come back, and checks resume.
  answerHeld();
  await new Promise((resolve) => setImmediate(resolve));
  await (await linkPluginSocket({ network: 'unix', address: socket }, uid, Date.now() + 5_000)).release();
});

/** A unix socket server at `path` that counts the connections it gets. */
async function countingServer(path: string): Promise<{ server: Server; connections: () => number }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { server, connections: () => connections };
}

test.serial('socket check: the host connects through a link of its own to the socket it checked; one swapped in after the check gets nothing', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-socket-check-'));
  const checkedPath = join(dir, 'plugin.sock');
  const plugin = await countingServer(checkedPath);
  const impostor = await countingServer(join(dir, 'impostor.sock'));
  t.teardown(async () => {
    plugin.server.close();
    impostor.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const socket = await linkPluginSocket({ network: 'unix', address: checkedPath }, process.getuid?.(), Date.now() + 5_000);
  t.not(dirname(socket.address), dir, "the host connects through its own directory, not the plugin's");
  // Attack: between the check and the connection, the plugin's directory entry is replaced by another socket
  // (a plugin's own directory is the plugin's to change; another user's socket could be renamed in).
  await rename(join(dir, 'impostor.sock'), checkedPath);
  await new Promise<void>((resolve, reject) => connect(socket.address).once('connect', resolve).once('error', reject));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.is(plugin.connections(), 1, 'the socket that was checked got the connection');
  t.is(impostor.connections(), 0, 'the socket swapped in got nothing');

  await socket.release();
  t.false(existsSync(dirname(socket.address)), 'the link and its directory are gone once released');
});

test.serial('socket check: a plugin socket on another file system than the host temporary directory is refused, naming where to put it', async (t) => {
  // /dev/shm is a tmpfs of its own on Linux; where the temporary directory is on it too there is nothing to show.
  if (!existsSync('/dev/shm') || statSync('/dev/shm').dev === statSync(tmpdir()).dev) {
    t.log('SKIPPED: no file system other than the temporary directory\'s to put a socket on (/dev/shm)');
    t.pass();
    return;
  }
  const dir = await mkdtemp('/dev/shm/gatehouse-socket-check-');
  const elsewhere = await countingServer(join(dir, 'plugin.sock'));
  t.teardown(async () => {
    elsewhere.server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const error = await t.throwsAsync(linkPluginSocket({ network: 'unix', address: join(dir, 'plugin.sock') }, process.getuid?.(), Date.now() + 5_000));
  t.true(isGatehouseError(error, 'CONNECT_FAILED'), String(error));
  t.regex(error?.message ?? '', /is not on the file system of the host's temporary directory .*PLUGIN_UNIX_SOCKET_DIR/);
  t.is(elsewhere.connections(), 0);
});
