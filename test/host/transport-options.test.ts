// Transport options: TCP on loopback within the host's port range, PLUGIN_UNIX_SOCKET_GROUP, message
// size limits on both sides, and grpc-js options passed through.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { isGatehouseError, launch, type GatehouseError } from '../../src/index.js';
import { loadCallbackServices, memoryStorage, WORKER_COOKIE, workerPlugin } from '../helpers/callback.js';
import { workerPluginScript } from '../helpers/paths.js';
import { listeningSocketPaths } from '../helpers/process.js';
import { fake } from '../hostile/harness.js';
import { requireCheckoutReachable, requireRoot } from '../hostile/requires.js';
import { healthImplementation, healthService } from '../../src/transport/health.js';

const { storage, worker } = loadCallbackServices();
const execFileAsync = promisify(execFile);

test('tcp: the plugin listens on 127.0.0.1 within the host\'s port range, pinned as over a unix socket', async (t) => {
  await using plugin = await launch(workerPlugin({ WORKER_NETWORK: 'tcp' }, { minPort: 42_000, maxPort: 42_199 }));
  t.is(plugin.network, 'tcp');
  const match = /^127\.0\.0\.1:(\d+)$/.exec(plugin.address);
  t.truthy(match, plugin.address);
  t.true(Number(match?.[1]) >= 42_000 && Number(match?.[1]) <= 42_199, plugin.address);
  t.regex(plugin.certificateSha256 ?? '', /^[0-9a-f]{64}$/);
  const id = await plugin.broker.serve([memoryStorage(storage)]);
  t.is((await plugin.client(worker).Run({ storage_id: id, key: 'k', value: Buffer.from('tcp') })).read_back.toString(), 'tcp');
});

test('tcp: a plugin refuses multiplexing over TCP, where a local user connecting first would own its one connection', async (t) => {
  // Attack: any local user connects to the loopback port before the host and holds the yamux session.
  const error = await t.throwsAsync(launch(workerPlugin({ WORKER_NETWORK: 'tcp' }, { multiplexBroker: true })));
  t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
  t.regex(error?.message ?? '', /refuses multiplexing \(PLUGIN_MULTIPLEX_GRPC\) over TCP/);
});

test('socket group: a host asking for multiplexing with a socket group is refused before anything starts', async (t) => {
  const error = await t.throwsAsync(launch(workerPlugin({}, { multiplexBroker: true, unixSocketGroup: process.getgid?.() ?? 0 })));
  t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
  t.regex(error?.message ?? '', /multiplexBroker and unixSocketGroup cannot go together/);
});

test('socket group: a host asking for plaintext with a socket group is refused before anything starts', async (t) => {
  // Attack: every member of the group may connect to a socket shared with it; without TLS nothing tells
  // the host's calls from theirs, on the plugin's socket or on the host's brokered ones.
  const error = await t.throwsAsync(launch(workerPlugin({ WORKER_ALLOW_PLAINTEXT: '1' }, { insecurePlaintext: true, unixSocketGroup: process.getgid?.() ?? 0 })));
  t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
  t.regex(error?.message ?? '', /insecurePlaintext and unixSocketGroup cannot go together/);
});

test('socket group: a plugin refuses plaintext with a socket group even when allowed, since every member of the group could call it', async (t) => {
  // A go-plugin host may send PLUGIN_UNIX_SOCKET_GROUP without a certificate: the plugin must refuse alone.
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-plaintext-group-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = {
    [WORKER_COOKIE.key]: WORKER_COOKIE.value,
    PLUGIN_PROTOCOL_VERSIONS: '1',
    PLUGIN_UNIX_SOCKET_DIR: dir,
    PLUGIN_UNIX_SOCKET_GROUP: String(process.getgid?.() ?? 0),
    WORKER_ALLOW_PLAINTEXT: '1',
  };
  const failure = await execFileAsync(process.execPath, [workerPluginScript], { env, timeout: 20_000 }).then(
    () => undefined,
    (error: unknown) => error as { code?: number; stdout?: string; stderr?: string },
  );
  t.is(failure?.code, 1, failure?.stderr);
  t.is(failure?.stdout, '', 'no handshake line');
  t.regex(failure?.stderr ?? '', /refuses plaintext with a socket group.*"code":"PLAINTEXT_REFUSED"/);
  t.deepEqual(readdirSync(dir), [], 'nothing left behind');
});

test('tcp: with no free port in the range the plugin fails to start, saying so', async (t) => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => taken.close());
  const port = (taken.address() as { port: number }).port;
  const error = await t.throwsAsync(launch(workerPlugin({ WORKER_NETWORK: 'tcp' }, { minPort: port, maxPort: port })));
  t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
  t.regex(error?.message ?? '', new RegExp(`cannot listen on any TCP port from ${port} to ${port}`));
});

test('tcp: a plugin refuses plaintext over TCP even when allowed, since every local user could connect', async (t) => {
  const error = await t.throwsAsync(
    launch(workerPlugin({ WORKER_NETWORK: 'tcp', WORKER_ALLOW_PLAINTEXT: '1' }, { insecurePlaintext: true })),
  );
  t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
  t.regex(error?.message ?? '', /refuses plaintext over TCP/);
});

test('tcp: a plaintext plugin, asked for by name, may name a loopback port outside the range (go-plugin\'s non-Go contract)', async (t) => {
  // go-plugin's Python example prints 1|1|tcp|127.0.0.1:1234|grpc; the range binds TLS plugins only.
  const server = new grpc.Server();
  server.addService(healthService, healthImplementation());
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  t.teardown(() => server.forceShutdown());
  t.true(port < 10_000 || port > 25_000, `the kernel's ephemeral port ${port} lies outside the default range`);
  await using plugin = await launch(fake('line', { FAKE_LINE: `1|1|tcp|127.0.0.1:${port}|grpc|` }, { insecurePlaintext: true, startTimeoutMs: 20_000, killGraceMs: 200 }));
  t.is(plugin.address, `127.0.0.1:${port}`);
});

test('socket group: the plugin and the host share their sockets with PLUGIN_UNIX_SOCKET_GROUP, and no one else', async (t) => {
  // As root, a group the process is not in (by name, resolved from /etc/group); otherwise our own.
  const root = process.getuid?.() === 0;
  const group = root ? 'nogroup' : String(process.getgid?.());
  const gid = root ? 65534 : Number(group);
  await using plugin = await launch(workerPlugin({}, { unixSocketGroup: group }));
  const socket = statSync(plugin.address);
  t.is(socket.gid, gid);
  t.is(socket.mode & 0o777, 0o660);
  const pluginDir = statSync(join(plugin.address, '..'));
  t.is(pluginDir.gid, gid);
  t.is(pluginDir.mode & 0o777, 0o710, 'the group may enter the directory, not list or change it');

  await plugin.broker.serve(3, [memoryStorage(storage)]);
  const brokered = listeningSocketPaths(process.pid).find((path) => basename(path).startsWith('broker-3-')) as string;
  const hostSocket = statSync(brokered);
  t.is(hostSocket.gid, gid);
  t.is(hostSocket.mode & 0o777, 0o660);
  const hostDir = statSync(dirname(brokered));
  t.is(hostDir.gid, gid);
  t.is(hostDir.mode & 0o777, 0o710, "the group may enter the host's directory, not list or change it");
  const { storage_id } = await plugin.client(worker).Offer({});
  const pluginSockets = readdirSync(join(plugin.address, '..')).filter((name) => name.startsWith(`broker-${storage_id}-`));
  t.is(statSync(join(plugin.address, '..', pluginSockets[0] as string)).mode & 0o777, 0o660);
});

test('socket group: a group name that does not exist is refused before the plugin starts', async (t) => {
  const error = await t.throwsAsync(launch(workerPlugin({}, { unixSocketGroup: 'no-such-group-here' })));
  t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
});

test('message size: a message over the host\'s limit fails with RESOURCE_EXHAUSTED and says which setting', async (t) => {
  await using plugin = await launch(workerPlugin({}, { maxMessageBytes: 64 * 1024, protocolVersions: [2] }));
  const error = await t.throwsAsync(plugin.client(storage).Put({ key: 'k', value: Buffer.alloc(100 * 1024) }));
  t.true(isGatehouseError(error, 'CALL_FAILED'), String(error));
  t.is((error as GatehouseError).details.grpcCode, grpc.status.RESOURCE_EXHAUSTED);
  // The reader learns which side refused and which setting to raise: here the host's own limit, before sending.
  t.regex(error?.message ?? '', /the request \(10\d{4} bytes\) is over this host's maxMessageBytes \(65536, launch\(\)\): raise it there/);
  // Brokered connections keep the same limit.
  const { storage_id } = await plugin.client(worker).Offer({});
  const connection = await plugin.broker.dial(storage_id);
  const brokered = await t.throwsAsync(connection.client(storage).Put({ key: 'k', value: Buffer.alloc(100 * 1024) }));
  t.is((brokered as GatehouseError).details.grpcCode, grpc.status.RESOURCE_EXHAUSTED);
  connection.close();
});

test("message size: a message over the plugin's limit is refused by the plugin", async (t) => {
  await using plugin = await launch(workerPlugin({ WORKER_MAX_MESSAGE_BYTES: String(64 * 1024) }, { protocolVersions: [2] }));
  await plugin.client(storage).Put({ key: 'small', value: Buffer.alloc(1024) });
  const error = await t.throwsAsync(plugin.client(storage).Put({ key: 'k', value: Buffer.alloc(100 * 1024) }));
  t.is((error as GatehouseError).details.grpcCode, grpc.status.RESOURCE_EXHAUSTED);
  t.regex(error?.message ?? '', /Received message larger than max/);
  // The status came from the plugin: the setting to raise is the plugin's, not the host's.
  t.regex(error?.message ?? '', /the plugin refused a message over its own size limit: raise it in the plugin \(serve\(\{ maxMessageBytes \}\)/);
  t.notRegex(error?.message ?? '', /launch\(\)/);
});

test('options pass-through: channel options reach the connections of both sides, server options the brokered servers', async (t) => {
  const seen: Array<{ path: string; agent: string }> = [];
  const recordCalls: grpc.ServerInterceptor = (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, forward) => {
            seen.push({ path: method.path, agent: String(metadata.get('user-agent')[0]) });
            forward(metadata);
          },
        }),
    });
  await using plugin = await launch(
    workerPlugin(
      {},
      {
        protocolVersions: [2],
        channelOptions: { 'grpc.primary_user_agent': 'gatehouse-host-test/7' },
        serverOptions: { interceptors: [recordCalls] },
      },
    ),
  );
  t.regex((await plugin.client(storage).Get({ key: 'user-agent' })).value.toString(), /^gatehouse-host-test\/7 /);
  const id = await plugin.broker.serve([memoryStorage(storage)]);
  await plugin.client(worker).Run({ storage_id: id, key: 'k', value: Buffer.from('v') });
  t.true(seen.some((call) => call.path === '/callback.Storage/Put'), 'the interceptor ran on the brokered server');
  t.regex(seen[0]?.agent ?? '', /^worker-plugin\/1 /, "the plugin's channel options reached its brokered dial");
});

test('socket group: a plugin run as another user reaches the host\'s brokered service only through the group', async (t) => {
  if (!requireRoot(t) || !requireCheckoutReachable(t)) return;
  const nobody = { user: 65534, group: 65534 };
  // Attack: another user (here the plugin's) connecting to the host's brokered socket, kept out by 0600.
  {
    await using plugin = await launch(workerPlugin({}, nobody));
    const id = await plugin.broker.serve([memoryStorage(storage)]);
    const error = await t.throwsAsync(plugin.client(worker).Run({ storage_id: id, key: 'k', value: Buffer.from('v') }));
    t.regex(error?.message ?? '', new RegExp(`broker id ${id}`));
  }
  await using plugin = await launch(workerPlugin({}, { ...nobody, unixSocketGroup: 65534 }));
  const id = await plugin.broker.serve([memoryStorage(storage)]);
  t.is((await plugin.client(worker).Run({ storage_id: id, key: 'k', value: Buffer.from('as nobody') })).read_back.toString(), 'as nobody');
  // And the host dials what the plugin serves: its sockets belong to the plugin's user, as checked.
  const { storage_id } = await plugin.client(worker).Offer({});
  const connection = await plugin.broker.dial(storage_id);
  t.is((await connection.client(storage).Get({ key: 'offered' })).value.toString(), 'by the plugin');
  connection.close();
});
