// go-plugin's CleanupClients: a host that manages many plugins stops them all at once.
import test from 'ava';
import { killAllPlugins, launch } from '../../src/index.js';
import { KV_COOKIE } from '../../examples/kv/kv.js';
import { kvPluginScript } from '../helpers/paths.js';
import { isAlive } from '../helpers/process.js';

test('killAllPlugins: every plugin this host launched is stopped gracefully, in parallel', async (t) => {
  const plugins = await Promise.all(
    [1, 2, 3].map(() => launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE })),
  );
  await killAllPlugins();
  for (const plugin of plugins) {
    t.deepEqual(await plugin.exited, { code: 0, signal: null }, 'stopped by Shutdown, not a signal');
    t.false(isAlive(plugin.pid));
  }
});
