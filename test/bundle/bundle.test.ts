// gatehouse bundle leaves @grpc/proto-loader (and protobufjs's parser with it) out of a plugin that does not
// use it: grpc-js requires it only to serve channelz or ORCA, which cannot work in a bundle (they read .proto
// files from grpc-js's directory; a bundle failed there with "__dirname is not defined"). A plugin that
// uses proto-loader itself keeps it.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { bundlePlugin } from '../../src/bundle/bundle.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const isProtoLoaderOrParser = (input: string): boolean => /@grpc[\\/]proto-loader[\\/]|protobufjs[\\/]src[\\/]parse\.js$/.test(input);

async function bundleAndRun(t: { teardown: (fn: () => Promise<void>) => void }, entry: string): Promise<{ inputs: string[]; stdout: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-bundle-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'plugin.mjs');
  const { inputs } = await bundlePlugin({ entry, out });
  // Alone in its directory: whatever it loads is in the bundle.
  const { stdout } = await promisify(execFile)(process.execPath, [out], { cwd: dir, env: {} });
  return { inputs, stdout };
}

test('a bundle leaves out the proto-loader grpc-js never loads in a plugin, and says so if it is reached', async (t) => {
  const recommended = await bundlePlugin({
    entry: fileURLToPath(new URL('../../examples/kv-precompiled/plugin.js', import.meta.url)),
    out: join(await mkdtemp(join(tmpdir(), 'gatehouse-bundle-test-')), 'plugin.mjs'),
  });
  t.teardown(() => rm(join(recommended.out, '..'), { recursive: true, force: true }));
  t.deepEqual(recommended.inputs.filter(isProtoLoaderOrParser), []);

  const { inputs, stdout } = await bundleAndRun(t, fixture('channelz-user.js'));
  t.deepEqual(inputs.filter(isProtoLoaderOrParser), []);
  t.regex(stdout, /^BUNDLE_OMITTED: grpc-js's channelz and ORCA services read \.proto files .*as a package/);
});

test('a plugin that imports proto-loader itself keeps it, and grpc-js still gets the stand-in', async (t) => {
  const { inputs, stdout } = await bundleAndRun(t, fixture('channelz-user-with-proto-loader.js'));
  t.true(inputs.some(isProtoLoaderOrParser));
  t.regex(stdout, /^BUNDLE_OMITTED: /);
});
