// Versioned plugins: the host declares services per protocol version, the plugin picks the highest
// both speak, and the host's clients are checked against what that version offers.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { isGatehouseError, launch, reattach, type VersionedServices } from '../../src/index.js';
import { CALLBACK_PROTO, loadCallbackServices, WORKER_COOKIE, workerPlugin } from '../helpers/callback.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { waitUntil } from '../helpers/process.js';

const { storage, worker } = loadCallbackServices();

/** The callback package as grpc.loadPackageDefinition makes it: each service a client constructor with `.service`. */
function callbackPackage(): { Storage: grpc.ServiceClientConstructor; Worker: grpc.ServiceClientConstructor } {
  const loaded = grpc.loadPackageDefinition(loadSync(CALLBACK_PROTO, { keepCase: true, defaults: true }));
  const pkg = loaded.callback as grpc.GrpcObject;
  return { Storage: pkg.Storage as grpc.ServiceClientConstructor, Worker: pkg.Worker as grpc.ServiceClientConstructor };
}

test('versions: the plugin picks the highest version both speak, and its services are served', async (t) => {
  await using plugin = await launch(workerPlugin({}, { versions: { 1: [worker], 2: [worker, storage] } }));
  t.is(plugin.protocolVersion, 2);
  t.is((await plugin.client(storage).Get({ key: 'version' })).value.toString(), '2');
});

test("versions: a client for a service the negotiated version does not offer is refused, naming the versions", async (t) => {
  await using plugin = await launch(workerPlugin({}, { versions: { 1: [worker], 3: [worker, storage] } }));
  t.is(plugin.protocolVersion, 1);
  const error = t.throws(() => plugin.client(storage));
  t.true(isGatehouseError(error, 'SERVICE_NOT_OFFERED'), String(error));
  t.regex(error?.message ?? '', /callback\.Storage is not part of protocol version 1/);
  t.regex(error?.message ?? '', /host's 1, 3/);
  t.throws(() => plugin.grpcClient(storage), { message: /not part of protocol version 1/ });
  t.is(typeof plugin.client(worker).Offer, 'function', 'the services of version 1 are fine');
});

test('versions: with no version in common, the host names both sides and the plugin logs its own list', async (t) => {
  const logger = recordingLogger();
  const error = await t.throwsAsync(launch(workerPlugin({}, { versions: { 5: [worker], 7: [worker] }, logger })));
  t.true(isGatehouseError(error, 'PROTOCOL_VERSION_MISMATCH'), String(error));
  t.regex(error?.message ?? '', /plugin speaks application protocol version 1, the host offered 5,7/);
  t.true(
    await waitUntil(() => logger.records.some((r) => /the host offers 5, 7, this plugin speaks 1, 2/.test(r.message)), 5000),
    'the plugin explained its side on stderr',
  );
});

test('versions: services given as grpc.loadPackageDefinition makes them (proto.pkg.Service), as plugin.client() takes them, are accepted', async (t) => {
  // What a go-plugin team writes in JavaScript: the same objects for VersionedPlugins and for the clients.
  const { Storage, Worker } = callbackPackage();
  await using plugin = await launch(workerPlugin({}, { versions: { 1: [Worker], 2: [Worker, Storage] } }));
  t.is(plugin.protocolVersion, 2);
  t.is((await plugin.client(storage).Get({ key: 'version' })).value.toString(), '2');
  t.notThrows(() => plugin.client(Storage), 'and the same object makes a client');
});

test('versions: an entry that is not a service definition is INVALID_OPTIONS naming it, before anything runs', async (t) => {
  // The command does not exist: only a check made before the spawn can answer INVALID_OPTIONS.
  const options = { command: '/nonexistent/gatehouse-plugin', cookie: WORKER_COOKIE };
  for (const [versions, named] of [
    [{ 1: [worker], 2: [worker, {}] }, /versions\[2\]\[1\]/],
    [{ 1: [worker, 'callback.Storage'] }, /versions\[1\]\[1\]/],
    [{ 1: worker }, /versions\[1\] must be a list/],
  ] as const) {
    const error = await t.throwsAsync(launch({ ...options, versions: versions as unknown as VersionedServices }));
    t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
    t.regex(error?.message ?? '', named);
  }
  const error = await t.throwsAsync(reattach('/nonexistent/record.json', { versions: { 1: [{}] } as unknown as VersionedServices }));
  t.true(isGatehouseError(error, 'INVALID_OPTIONS'), `reattach checks them first too: ${String(error)}`);
});

test('versions: versions and protocolVersions together are refused', async (t) => {
  const error = await t.throwsAsync(launch(workerPlugin({}, { versions: { 1: [worker] }, protocolVersions: [1] })));
  t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
});

test('versions: a call to a service the plugin does not serve at the version it chose says which version that is, and what to check', async (t) => {
  // The host declares no versions, so nothing is checked before the call: the plugin answers UNIMPLEMENTED.
  await using plugin = await launch(workerPlugin({}, { protocolVersions: [1] }));
  t.is(plugin.protocolVersion, 1);
  const error = await t.throwsAsync(plugin.client(storage).Get({ key: 'version' }));
  t.true(isGatehouseError(error, 'CALL_FAILED'), String(error));
  t.is((error as unknown as { details: { grpcCode?: number } }).details.grpcCode, grpc.status.UNIMPLEMENTED);
  t.regex(error?.message ?? '', /: the plugin does not serve it at protocol version 1, the one it chose: check the service's package and name against the plugin's \.proto, and the versions each side offers/);
});
