// gatehouse bundle leaves @grpc/proto-loader (and protobufjs's parser with it) out of a plugin that does not
// use it: grpc-js requires it only to serve channelz or ORCA, which cannot work in a bundle (they read .proto
// files from grpc-js's directory; a bundle failed there with "__dirname is not defined"). A plugin that
// uses proto-loader itself keeps it.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { bundlePlugin } from '../../src/bundle/bundle.js';
import { isGatehouseError } from '../../src/errors.js';

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

test('a bundle Node.js would compile twice is named at build time; one it would run as CommonJS, or not at all, is refused before anything is written', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-bundle-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const entry = join(dir, 'entry.mjs');
  await writeFile(entry, "await Promise.resolve();\nconsole.log('ran');\n");
  const place = async (name: string, packageJson?: object): Promise<string> => {
    const sub = await mkdtemp(join(dir, `${name}-`));
    if (packageJson) await writeFile(join(sub, 'package.json'), JSON.stringify(packageJson));
    return sub;
  };
  const run = (file: string) => promisify(execFile)(process.execPath, [file], { env: {} });

  const untyped = join(await place('untyped', { name: 'kv', version: '1.0.0' }), 'plugin.js');
  const warned = await bundlePlugin({ entry, out: untyped });
  t.regex(warned.moduleTypeWarning ?? '', /package\.json does not say "type": "module", so Node\.js compiles .*plugin\.js twice/);
  // What the warning is about: Node.js reparses the file at every start and says so on stderr.
  const slow = await run(untyped);
  t.is(slow.stdout, 'ran\n');
  t.regex(slow.stderr, /MODULE_TYPELESS_PACKAGE_JSON/);

  for (const out of [join(await place('typed', { type: 'module' }), 'plugin.js'), join(await place('mjs'), 'plugin.mjs')]) {
    const quiet = await bundlePlugin({ entry, out });
    t.is(quiet.moduleTypeWarning, undefined, out);
    t.deepEqual(await run(out), { stdout: 'ran\n', stderr: '' });
  }

  for (const out of [join(await place('commonjs', { type: 'commonjs' }), 'plugin.js'), join(await place('cjs'), 'plugin.cjs')]) {
    const error = await t.throwsAsync(bundlePlugin({ entry, out }));
    t.true(isGatehouseError(error, 'BUNDLE_FAILED'), String(error));
    t.regex(error?.message ?? '', /runs .* as CommonJS .*name it \.mjs/);
    t.false(existsSync(out), 'nothing written');
  }
  const broken = await place('broken');
  await writeFile(join(broken, 'package.json'), '{ "type": ');
  const refused = await t.throwsAsync(bundlePlugin({ entry, out: join(broken, 'plugin.js') }));
  t.true(isGatehouseError(refused, 'BUNDLE_FAILED'), String(refused));
  t.regex(refused?.message ?? '', /would refuse to run .*package\.json is not valid JSON/);
  t.false(existsSync(join(broken, 'plugin.js')), 'nothing written');
});
