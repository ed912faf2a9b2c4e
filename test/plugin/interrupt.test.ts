// go-plugin's plugins ignore interrupts (Ctrl-C reaches the whole foreground group); the host decides.
import test from 'ava';
import { launch } from '../../src/index.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { kvPluginScript } from '../helpers/paths.js';

test('serve: a plugin ignores SIGINT and keeps serving until its host stops it', async (t) => {
  await using plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
  process.kill(plugin.pid, 'SIGINT');
  await new Promise((resolve) => setTimeout(resolve, 300));
  const kv = plugin.client(loadKVService());
  await kv.Put({ key: 'k', value: Buffer.from('still here') });
  t.is((await kv.Get({ key: 'k' })).value.toString(), 'still here');
  t.deepEqual(await plugin.kill(), { code: 0, signal: null });
});
