// gatehouse against the real go-plugin 1.0.1 (Debian), both directions, always with AutoMTLS.
import { existsSync } from 'node:fs';
import { isGatehouseError, launch } from '../../src/index.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { kvPluginScript } from '../helpers/paths.js';
import { goTest } from './go-binaries.js';
import { assertRoundTrip, assertStoppedOnShutdown, hclogLines, runKvhost } from './kvhost.js';

goTest('gatehouse host -> Go plugin: Put, Get and kill over pinned mutual TLS', async (t, go) => {
  const logger = recordingLogger();
  const plugin = await launch({ command: go.kvplugin, cookie: KV_COOKIE, logger });
  t.is(plugin.protocolVersion, 1);
  t.regex(plugin.certificateSha256 ?? '', /^[0-9a-f]{64}$/, 'the Go plugin answered AutoMTLS with its certificate');
  // go-plugin 1.0.1 ignores PLUGIN_UNIX_SOCKET_DIR but honours TMPDIR, which the host points at its private directory.
  t.true(plugin.address.startsWith(plugin.socketDir + '/'), plugin.address);

  const kv = plugin.client(loadKVService());
  await kv.Put({ key: 'hello', value: Buffer.from('world') });
  const { value } = await kv.Get({ key: 'hello' });
  t.is(value.toString(), 'world');

  const status = await plugin.kill();
  t.deepEqual(status, { code: 0, signal: null }, 'the Go plugin stopped on Shutdown, not on a signal');
  t.false(existsSync(plugin.socketDir), 'the private socket directory is removed');

  // The Go plugin's hclog line became a structured record under the plugin's name, at its own level.
  const put = logger.records.find((r) => r.message === 'put');
  t.is(put?.level, 'info');
  t.is(put?.fields.plugin, 'kvplugin');
  t.deepEqual((put?.fields.fields as Record<string, unknown> | undefined)?.key, 'hello');
});

goTest('gatehouse host -> Go plugin with a wrong cookie: COOKIE_MISMATCH, not go-plugin\'s text as PLUGIN_EXITED', async (t, go) => {
  const error = await t.throwsAsync(launch({ command: go.kvplugin, cookie: { key: KV_COOKIE.key, value: 'wrong' } }));
  t.true(isGatehouseError(error, 'COOKIE_MISMATCH'), String(error));
  t.regex(error?.message ?? '', /GATEHOUSE_KV_PLUGIN/);
  t.false(error?.message.includes('wrong'), 'the value is never quoted');
});

goTest('go-plugin host -> gatehouse TypeScript plugin: Put, Get, and a kill well under the 2 s grace', async (t, go) => {
  const run = await runKvhost(go, ['--', process.execPath, kvPluginScript]);
  assertRoundTrip(t, run);
  // Our plugin honours the controller's Shutdown, so go-plugin never waits out its 2 s before SIGKILL.
  assertStoppedOnShutdown(t, run.stderr);

  const entries = hclogLines(run.stderr);
  // go-plugin parsed our hclog line (it drops lines whose @timestamp lacks six fractional digits).
  t.true(
    entries.some((e) => e['@message'] === 'put' && e['@level'] === 'info' && e.key === 'hello'),
    run.stderr,
  );
});
