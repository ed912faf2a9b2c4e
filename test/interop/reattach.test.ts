// Reattach to a go-plugin 1.0.1 plugin: the same TLS settings reconnect to it (as kvhost -reattach-test does).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, reattach } from '../../src/index.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { kvPluginScript } from '../helpers/paths.js';
import { goTest } from './go-binaries.js';
import { assertRoundTrip, runKvhost } from './kvhost.js';

goTest('gatehouse host reattaches to a running go-plugin 1.0.1 plugin and stops it', async (t, go) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-reattach-go-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = await launch({ command: go.kvplugin, cookie: KV_COOKIE });
  t.teardown(() => first.kill());
  await first.client(loadKVService()).Put({ key: 'hello', value: Buffer.from('go') });

  const second = await reattach(await first.reattachRecord({ privateKeyFile: join(dir, 'host.key') }));
  t.is((await second.client(loadKVService()).Get({ key: 'hello' })).value.toString(), 'go');
  await second.kill();
  t.deepEqual(await first.exited, { code: 0, signal: null }, 'the Go plugin stopped on the reattached Shutdown');
});

goTest('go-plugin 1.0.1 host reattaches a second client to a running gatehouse plugin', async (t, go) => {
  const run = await runKvhost(go, ['-reattach-test', '--', process.execPath, kvPluginScript]);
  assertRoundTrip(t, run);
  t.is(run.result.reattachGet, 'world');
});
