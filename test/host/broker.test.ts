// go-plugin's broker between a gatehouse host and a gatehouse plugin (the non-multiplexed mode).
import { statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import test from 'ava';
import { listeningSocketPaths, waitUntil } from '../helpers/process.js';
import { isGatehouseError, launch, type PluginService } from '../../src/index.js';
import { grpcJsCalls } from '../../src/transport/call-path.js';
import { checkHealth } from '../../src/host/connection.js';
import { clientOn, openChannel } from '../../src/transport/channel.js';
import { generateEphemeralIdentity } from '../../src/tls/certificate.js';
import { pinnedChannelCredentials } from '../../src/tls/pinning.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { loadCallbackServices, memoryStorage, workerPlugin } from '../helpers/callback.js';
import { fakePluginScript } from '../helpers/paths.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const { storage, worker } = loadCallbackServices();

test('broker: the host hands the plugin a callback service, and the plugin calls it over the pinned connection', async (t) => {
  await using plugin = await launch(workerPlugin());
  const store = new Map<string, Buffer>();
  const id = await plugin.broker.serve([memoryStorage(storage, store)]);
  const { read_back } = await plugin.client(worker).Run({ storage_id: id, key: 'secret', value: Buffer.from('from the host') });
  t.is(read_back.toString(), 'from the host', 'the plugin read back what it wrote through the host');
  t.is(store.get('secret')?.toString(), 'from the host', "the write landed in the host's own store");
});

test('broker: serve() given what is not a service with its handlers is INVALID_OPTIONS naming the entry, and serves nothing', async (t) => {
  // What a go-plugin team writes first: the service itself, as for AcceptAndServe's RegisterXxxServer.
  await using plugin = await launch(workerPlugin());
  for (const [services, named] of [
    [[storage], /broker\.serve\(\) services\[0\]: expected \{ definition, implementation \}.*pluginService\(/],
    [[memoryStorage(storage), {}], /broker\.serve\(\) services\[1\]/],
    [[{ definition: {}, implementation: {} }], /broker\.serve\(\) services\[0\]/],
    [[{ definition: storage, implementation: 'Get' }], /services\[0\]\.implementation must be an object of handlers/],
  ] as const) {
    const error = await t.throwsAsync(plugin.broker.serve(77, services as unknown as PluginService[]));
    t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
    t.regex(error?.message ?? '', named);
  }
  t.is(await plugin.broker.serve(77, [memoryStorage(storage)]), 77, 'the refused calls served nothing under the id');
});

test('broker: the plugin serves a service and the host dials it', async (t) => {
  await using plugin = await launch(workerPlugin());
  const { storage_id } = await plugin.client(worker).Offer({});
  const connection = await plugin.broker.dial(storage_id);
  t.is((await connection.client(storage).Get({ key: 'offered' })).value.toString(), 'by the plugin');
  connection.close();
});

test("broker: the host serves under an id it chooses, and the socket is 0600 in a 0700 directory of the host's, not in the plugin's", async (t) => {
  await using plugin = await launch(workerPlugin());
  t.is(await plugin.broker.serve(4242, [memoryStorage(storage)]), 4242);
  const sockets = listeningSocketPaths(process.pid).filter((path) => basename(path).startsWith('broker-4242-'));
  t.is(sockets.length, 1);
  const [socket = ''] = sockets;
  t.is(statSync(socket).mode & 0o777, 0o600);
  t.is(statSync(dirname(socket)).mode & 0o777, 0o700);
  t.false(socket.startsWith(plugin.socketDir + '/'));
  const error = await t.throwsAsync(plugin.broker.serve(4242, [memoryStorage(storage)]));
  t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
});

test("broker: another local client, even with a valid certificate of its own, cannot call the host's brokered service", async (t) => {
  // Attack: a local process that finds the brokered socket and calls the host's callback service.
  await using plugin = await launch(workerPlugin());
  await plugin.broker.serve(7, [memoryStorage(storage)]);
  const socket = listeningSocketPaths(process.pid).find((path) => basename(path).startsWith('broker-7-')) as string;
  const intruder = generateEphemeralIdentity();
  const hostCertificate = generateEphemeralIdentity(); // the intruder can only guess at the host's certificate
  const channel = openChannel(
    `unix:${socket}`,
    pinnedChannelCredentials(intruder, hostCertificate.certificateDer),
    1024 * 1024,
  );
  const refused = await t.throwsAsync(checkHealth(grpcJsCalls(clientOn(channel)), 5000));
  t.regex(refused?.message ?? '', /UNAVAILABLE|UNAUTHENTICATED/);
  channel.close();
});

test('broker: dialing an id nobody announced fails after the timeout, with the id in the message', async (t) => {
  await using plugin = await launch(workerPlugin());
  const error = await t.throwsAsync(plugin.broker.dial(999, { timeoutMs: 300 }));
  t.true(isGatehouseError(error, 'BROKER_FAILED'), String(error));
  t.regex(error?.message ?? '', /broker id 999/);
});

test('broker: an address the plugin announces that is not loopback is refused before any connection', async (t) => {
  // Attack: a plugin steering the host's TLS client (and its certificate) off the machine.
  await using plugin = await launch(workerPlugin({ WORKER_MODE: 'hostile' }));
  const { storage_id } = await plugin.client(worker).Offer({});
  const error = await t.throwsAsync(plugin.broker.dial(storage_id));
  t.true(isGatehouseError(error, 'BROKER_FAILED'), String(error));
  t.regex(error?.message ?? '', /not a loopback address/);
});

test('broker: a plugin without a broker service makes broker operations fail fast with the reason', async (t) => {
  await using plugin = await launch({
    command: process.execPath,
    args: [fakePluginScript],
    cookie: KV_COOKIE,
    env: { FAKE_MODE: 'stubborn' },
    killGraceMs: 100,
  });
  const started = Date.now();
  const error = await t.throwsAsync(plugin.broker.dial(1, { timeoutMs: 30_000 }));
  t.true(isGatehouseError(error, 'BROKER_FAILED'), String(error));
  t.regex(error?.message ?? '', /does not serve go-plugin's broker/);
  t.true(Date.now() - started < 15_000, 'it did not wait for the dial timeout');
});

test('broker: a kill ends the broker stream first, so the plugin still stops on Shutdown at once', async (t) => {
  const logger = recordingLogger();
  const plugin = await launch(workerPlugin({}, { logger }));
  await plugin.broker.serve([memoryStorage(storage)]);
  const status = await plugin.kill();
  t.deepEqual(status, { code: 0, signal: null });
  // The plugin says when its grace for open calls ran out: the broker stream did not hold up the stop.
  t.false(logger.records.some((record) => /calls still open/.test(record.message)), 'the stop waited out the grace');
});

test('kill: a plugin whose grace cut an open call says so (the kill tests above rely on that line)', async (t) => {
  const logger = recordingLogger();
  const plugin = await launch({ command: process.execPath, args: [fakePluginScript], cookie: KV_COOKIE, logger, env: { FAKE_MODE: 'hostile-kv' } });
  const hanging = plugin.client(loadKVService()).Get({ key: 'hang' }).catch(() => undefined);
  // The call must be open on the plugin when the kill starts: wait for the plugin to say it holds it.
  t.true(await waitUntil(() => logger.records.some((record) => /holding a call open/.test(record.message)), 20_000), 'the plugin got the call');
  t.deepEqual(await plugin.kill(), { code: 0, signal: null });
  await hanging;
  t.true(logger.records.some((record) => record.level === 'warn' && /calls still open after 1000 ms were cut/.test(record.message)));
});
