// The recommended TypeScript plugin form (docs/plugins.md): examples/kv-precompiled bundled by
// bundlePlugin, run alone in an empty directory: no node_modules, no kv.proto beside it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { bundlePlugin } from '../../src/bundle/bundle.js';
import { launch } from '../../src/index.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';

const entry = fileURLToPath(new URL('../../examples/kv-precompiled/plugin.js', import.meta.url));

test('the precompiled KV bundle runs on its own and speaks the KV protocol of kv.proto', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-kv-precompiled-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'plugin.mjs');
  const { inputs } = await bundlePlugin({ entry, out });
  // Its codecs are ts-proto's generated code: neither kv.ts (proto-loader) nor any .proto went in.
  t.true(inputs.some((input) => input.includes('examples/generated/ts-proto/kv.js')));
  t.false(inputs.some((input) => input.endsWith('examples/kv/kv.js') || input.endsWith('.proto')), inputs.join('\n'));

  await using plugin = await launch({ command: process.execPath, args: [out], cookie: KV_COOKIE });
  // The host's side comes from kv.proto (proto-loader): both sides agree on the wire.
  const kv = plugin.client(loadKVService());
  await kv.Put({ key: 'greeting', value: Buffer.from('hello') });
  t.is(Buffer.from((await kv.Get({ key: 'greeting' })).value).toString(), 'hello');
  t.is((await kv.Get({ key: 'missing' })).value.length, 0);
});
