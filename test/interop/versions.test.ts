// Versioned plugins against go-plugin 1.0.1: our host with a Go plugin of two versions, and a Go host
// offering several versions to our plugin.
import { isGatehouseError, launch } from '../../src/index.js';
import { loadCallbackServices, WORKER_COOKIE } from '../helpers/callback.js';
import { workerPluginScript } from '../helpers/paths.js';
import { runBrokerhost } from './brokerhost.js';
import { goTest } from './go-binaries.js';

const { storage, worker } = loadCallbackServices();

goTest('gatehouse host -> Go plugin of versions 1 and 2: version 2 is chosen and serves its extra service', async (t, go) => {
  await using plugin = await launch({ command: go.brokerplugin, cookie: WORKER_COOKIE, versions: { 1: [worker], 2: [worker, storage] } });
  t.is(plugin.protocolVersion, 2);
  t.is((await plugin.client(storage).Get({ key: 'version' })).value.toString(), '2');
});

goTest('gatehouse host offering only version 1 gets the Go plugin\'s version 1, without its version 2 service', async (t, go) => {
  await using plugin = await launch({ command: go.brokerplugin, cookie: WORKER_COOKIE, versions: { 1: [worker] } });
  t.is(plugin.protocolVersion, 1);
  t.true(isGatehouseError(t.throws(() => plugin.client(storage)), 'SERVICE_NOT_OFFERED'));
  // Asked anyway through a client the check does not cover, the Go plugin has no such service in version 1.
  await using unchecked = await launch({ command: go.brokerplugin, cookie: WORKER_COOKIE, protocolVersions: [1] });
  const error = await t.throwsAsync(unchecked.client(storage).Get({ key: 'version' }));
  t.is((error as { details?: { grpcCode?: number } }).details?.grpcCode, 12 /* UNIMPLEMENTED */);
});

goTest('gatehouse host with no version in common with the Go plugin names both sides', async (t, go) => {
  const error = await t.throwsAsync(launch({ command: go.brokerplugin, cookie: WORKER_COOKIE, versions: { 3: [worker] } }));
  t.true(isGatehouseError(error, 'PROTOCOL_VERSION_MISMATCH'), String(error));
  t.regex(error?.message ?? '', /plugin speaks application protocol version 1, the host offered 3/);
});

goTest('go-plugin host offering versions 1 and 2 -> gatehouse plugin of versions 1 and 2: version 2', async (t, go) => {
  const run = await runBrokerhost(go, ['-versions', '1,2', '--', process.execPath, workerPluginScript]);
  t.is(run.code, 0, run.stderr);
  t.is(run.result.negotiatedVersion, 2);
  t.is(run.result.runReadBack, 'from the go host', 'the broker works under the negotiated version too');
});

goTest('go-plugin host offering only version 3 refuses the gatehouse plugin, naming both sides', async (t, go) => {
  const run = await runBrokerhost(go, ['-versions', '3', '--', process.execPath, workerPluginScript]);
  t.is(run.code, 1);
  t.regex(run.result.error ?? '', /Incompatible API version with plugin. Plugin version: 1, Client versions: \[3\]/);
});
