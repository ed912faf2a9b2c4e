// The broker multiplexed over the plugin's one connection (PLUGIN_MULTIPLEX_GRPC, go-plugin >= 1.6),
// gatehouse host <-> gatehouse plugin.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { isGatehouseError, launch } from '../../src/index.js';
import { loadCallbackServices, memoryStorage, workerPlugin } from '../helpers/callback.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const { storage, worker } = loadCallbackServices();
const multiplexed = workerPlugin({}, { multiplexBroker: true });

/** Every socket under a directory, recursively. */
function sockets(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isSocket())
    .map((entry) => join(entry.parentPath, entry.name));
}

test('multiplexed broker: callbacks both ways ride the one plugin socket, no socket per service', async (t) => {
  await using plugin = await launch(multiplexed);
  const store = new Map<string, Buffer>();
  const id = await plugin.broker.serve([memoryStorage(storage, store)]);
  const { read_back } = await plugin.client(worker).Run({ storage_id: id, key: 'k', value: Buffer.from('over yamux') });
  t.is(read_back.toString(), 'over yamux');
  t.is(store.get('k')?.toString(), 'over yamux');

  const { storage_id } = await plugin.client(worker).Offer({});
  const connection = await plugin.broker.dial(storage_id);
  t.is((await connection.client(storage).Get({ key: 'offered' })).value.toString(), 'by the plugin');

  // A value of 3 MiB crosses many yamux windows inside the brokered TLS connection.
  const big = Buffer.alloc(3 * 1024 * 1024, 0x5a);
  await connection.client(storage).Put({ key: 'big', value: big });
  t.true((await connection.client(storage).Get({ key: 'big' })).value.equals(big));
  connection.close();

  const found = sockets(plugin.socketDir);
  t.false(found.some((path) => /broker-/.test(path)), found.join('\n'));
  t.is(found.filter((path) => path.endsWith('/plugin.sock')).length, 1, 'one plugin socket');
});

test('multiplexed broker: a knock for an id nobody serves is refused with the reason', async (t) => {
  await using plugin = await launch(multiplexed);
  const error = await t.throwsAsync(plugin.broker.dial(999));
  t.true(isGatehouseError(error, 'BROKER_FAILED'), String(error));
  t.regex(error?.message ?? '', /refused the knock: no brokered service with id 999/);
});

test('multiplexed broker: a kill still ends with the plugin stopping on Shutdown', async (t) => {
  const logger = recordingLogger();
  const plugin = await launch({ ...multiplexed, logger });
  await plugin.broker.serve([memoryStorage(storage)]);
  t.deepEqual(await plugin.kill(), { code: 0, signal: null });
  // The plugin says when its grace for open calls ran out: the multiplexed stream did not hold up the stop.
  t.false(logger.records.some((record) => /calls still open/.test(record.message)), 'the stop waited out the grace');
});
