// go-plugin's broker (non-multiplexed, as go-plugin 1.0.1 speaks it) between gatehouse and Go, both ways.
import { fileURLToPath } from 'node:url';
import { isGatehouseError, launch } from '../../src/index.js';
import { loadCallbackServices, memoryStorage, WORKER_COOKIE } from '../helpers/callback.js';
import { runBrokerhost } from './brokerhost.js';
import { assertStoppedOnShutdown } from './kvhost.js';
import { goTest } from './go-binaries.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { waitUntil } from '../helpers/process.js';

const workerPluginScript = fileURLToPath(new URL('../fixtures/worker-plugin.js', import.meta.url));
const { storage, worker } = loadCallbackServices();

goTest('Go host and Go plugin: the broker works both ways (baseline for the fixtures)', async (t, go) => {
  const run = await runBrokerhost(go, ['--', go.brokerplugin]);
  t.is(run.code, 0, run.stderr);
  t.is(run.result.runReadBack, 'from the go host');
  t.is(run.result.hostStored, 'from the go host');
  t.is(run.result.offered, 'by the plugin');
});

goTest('go-plugin host -> gatehouse plugin: the plugin calls back into the Go host, and the Go host dials the plugin', async (t, go) => {
  const run = await runBrokerhost(go, ['--', process.execPath, workerPluginScript]);
  t.is(run.code, 0, run.stderr);
  t.is(run.result.error, undefined);
  // Our plugin dialed the Storage the Go host served through the broker, with the pinned certificates.
  t.is(run.result.runReadBack, 'from the go host');
  t.is(run.result.hostStored, 'from the go host');
  // The Go host dialed the Storage our plugin served through the broker.
  t.is(run.result.offered, 'by the plugin');
  // Our plugin ends the broker stream on Shutdown, so go-plugin never waits out its 2 s before SIGKILL.
  assertStoppedOnShutdown(t, run.stderr);
});

goTest('gatehouse host -> go-plugin plugin: the Go plugin calls back into our Storage, and we dial the Go plugin', async (t, go) => {
  await using plugin = await launch({ command: go.brokerplugin, cookie: WORKER_COOKIE });
  const store = new Map<string, Buffer>();
  const id = await plugin.broker.serve([memoryStorage(storage, store)]);
  const { read_back } = await plugin.client(worker).Run({ storage_id: id, key: 'secret', value: Buffer.from('from gatehouse') });
  t.is(read_back.toString(), 'from gatehouse');
  t.is(store.get('secret')?.toString(), 'from gatehouse');

  const { storage_id } = await plugin.client(worker).Offer({});
  const connection = await plugin.broker.dial(storage_id);
  t.is((await connection.client(storage).Get({ key: 'offered' })).value.toString(), 'by the plugin');
  connection.close();
});

goTest('gatehouse host -> go-plugin 1.0.1 plugin as built, without the broker TLS completion: its callback fails, and the host says why and what to do', async (t, go) => {
  // go-plugin before 1.4.4 gives a plugin's broker.Dial no roots and no server name under AutoMTLS
  // (hashicorp/go-plugin#109): a callback written as go-plugin's "bidirectional" example cannot reach a
  // gatehouse host, which always uses mutual TLS. The Go error names neither the version nor the fix.
  const logger = recordingLogger();
  await using plugin = await launch({ command: go.brokerplugin, cookie: WORKER_COOKIE, env: { BROKERPLUGIN_STOCK_BROKER_TLS: '1' }, logger });
  const id = await plugin.broker.serve([memoryStorage(storage)]);
  const error = await t.throwsAsync(plugin.client(worker).Run({ storage_id: id, key: 'k', value: Buffer.from('v') }, { timeoutMs: 10_000 }));
  t.true(isGatehouseError(error, 'CALL_FAILED'), String(error));
  t.true(
    await waitUntil(() => logger.records.some((r) => r.level === 'warn' && /go-plugin 1\.4\.4/.test(r.message)), 10_000),
    JSON.stringify(logger.records.map((r) => r.message)),
  );
  const warning = logger.records.find((r) => r.level === 'warn' && /go-plugin 1\.4\.4/.test(r.message));
  t.regex(warning?.message ?? '', new RegExp(`the plugin refused the host's certificate when it dialed broker id ${id}`));
  t.regex(warning?.message ?? '', /hashicorp\/go-plugin#109/);
  t.is(logger.records.filter((r) => r.level === 'warn' && /go-plugin 1\.4\.4/.test(r.message)).length, 1, 'said once per broker id, not per retry');
});

goTest('gatehouse host asking for the multiplexed broker refuses a go-plugin 1.0.1 plugin, naming the reason', async (t, go) => {
  const error = await t.throwsAsync(launch({ command: go.brokerplugin, cookie: WORKER_COOKIE, multiplexBroker: true }));
  t.true(isGatehouseError(error, 'MULTIPLEX_UNSUPPORTED'), String(error));
  t.regex(error?.message ?? '', /go-plugin >= 1\.6/);
});
