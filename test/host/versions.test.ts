// Versioned plugins: the host declares services per protocol version, the plugin picks the highest
// both speak, and the host's clients are checked against what that version offers.
import test from 'ava';
import { isGatehouseError, launch } from '../../src/index.js';
import { loadCallbackServices, workerPlugin } from '../helpers/callback.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { waitUntil } from '../helpers/process.js';

const { storage, worker } = loadCallbackServices();

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

test('versions: versions and protocolVersions together are refused', async (t) => {
  const error = await t.throwsAsync(launch(workerPlugin({}, { versions: { 1: [worker] }, protocolVersions: [1] })));
  t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
});
