// GRPCStdio came with go-plugin 1.4: a host must still run a go-plugin 1.0.1 plugin, which has none.
import { PassThrough } from 'node:stream';
import { launch } from '../../src/index.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { waitUntil } from '../helpers/process.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { goTest } from './go-binaries.js';

goTest('gatehouse host with stdio writers runs a go-plugin 1.0.1 plugin, which answers GRPCStdio with UNIMPLEMENTED', async (t, go) => {
  const logger = recordingLogger();
  await using plugin = await launch({
    command: go.kvplugin,
    cookie: KV_COOKIE,
    logger,
    stdio: { stdout: new PassThrough(), stderr: new PassThrough() },
  });
  const kv = plugin.client(loadKVService());
  await kv.Put({ key: 'k', value: Buffer.from('v') });
  t.is((await kv.Get({ key: 'k' })).value.toString(), 'v');
  t.true(
    await waitUntil(
      () => logger.records.some((r) => r.message === 'plugin stdio stream unavailable' && r.fields.code === 'UNIMPLEMENTED'),
      10_000,
    ),
  );
});
