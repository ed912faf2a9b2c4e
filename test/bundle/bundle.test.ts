// gatehouse bundle leaves @grpc/proto-loader (and protobufjs's parser with it) out of a plugin that does not
// use it: grpc-js requires it only to serve channelz or ORCA, which cannot work in a bundle (they read .proto
// files from grpc-js's directory; a bundle failed there with "__dirname is not defined"). A plugin that
// uses proto-loader itself keeps it.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { bundlePlugin, MAX_MODULE_BYTES } from '../../src/bundle/bundle.js';
import { isGatehouseError } from '../../src/errors.js';
import { tempDir } from '../discover/temp-dir.js';
import { requireRoot } from '../hostile/requires.js';

const NOBODY = 65534;

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

/**
 * A project in a shared sticky directory (a stand-in for /tmp) with `foo` in its own node_modules; `plant`
 * adds what another user (uid 65534, by chown) could put in the shared directory above it.
 */
async function sharedProject(t: ExecutionContext, plant: (shared: string) => Promise<void>): Promise<{ entry: string; out: string }> {
  const shared = join(await tempDir(t), 'shared');
  await mkdir(shared, { mode: 0o1777 });
  await chmod(shared, 0o1777);
  const project = join(shared, 'proj');
  await mkdir(join(project, 'node_modules', 'foo'), { recursive: true });
  await writeFile(join(project, 'plugin.ts'), "import { greet } from 'foo';\nconsole.log(greet());\n");
  await writeFile(join(project, 'package.json'), '{"type":"module"}');
  await writeFile(join(project, 'node_modules', 'foo', 'index.js'), "export function greet() { return 'genuine foo'; }\n");
  await writeFile(join(project, 'node_modules', 'foo', 'package.json'), '{"name":"foo","main":"index.js"}');
  await plant(shared);
  return { entry: join(project, 'plugin.ts'), out: join(project, 'plugin.js') };
}

async function theirs(path: string, content?: string): Promise<void> {
  if (content === undefined) await mkdir(path, { recursive: true });
  else await writeFile(path, content);
  await chown(path, NOBODY, NOBODY);
}

test("a tsconfig.json another user put in a shared directory above the project cannot swap a module into the bundle", async (t) => {
  if (!requireRoot(t)) return;
  const { entry, out } = await sharedProject(t, async (shared) => {
    await theirs(join(shared, 'evil'));
    await theirs(join(shared, 'evil', 'foo.ts'), "export function greet() { return 'ATTACKER CODE'; }\n");
    await theirs(join(shared, 'tsconfig.json'), JSON.stringify({ compilerOptions: { baseUrl: '.', paths: { foo: ['evil/foo.ts'] } } }));
  });
  await t.throwsAsync(bundlePlugin({ entry, out }), { code: 'FILE_BAD_OWNER', message: /shared\/tsconfig\.json: owned by uid 65534.*remove it/ });
  t.false(existsSync(out), 'nothing written');
});

test('a module or package.json another user put above the project, or a module others can write, is refused', async (t) => {
  if (!requireRoot(t)) return;
  const planted = {
    // Node's lookup walks up to shared/node_modules when the project's own has no `foo`.
    'node_modules in the shared directory': async (shared: string) => {
      await rm(join(shared, 'proj', 'node_modules'), { recursive: true });
      await theirs(join(shared, 'node_modules'));
      await theirs(join(shared, 'node_modules', 'foo'));
      await theirs(join(shared, 'node_modules', 'foo', 'index.js'), "export function greet() { return 'ATTACKER CODE'; }\n");
    },
    'package.json in the shared directory': (shared: string) => theirs(join(shared, 'package.json'), '{"sideEffects":false}'),
  };
  for (const [name, plant] of Object.entries(planted)) {
    const { entry, out } = await sharedProject(t, plant);
    const error = await t.throwsAsync(bundlePlugin({ entry, out }), { message: /shared\/(?:node_modules|package\.json).*owned by uid 65534.*remove it/ }, name);
    t.true(isGatehouseError(error, 'FILE_BAD_OWNER') || isGatehouseError(error, 'DIRECTORY_WRITABLE_BY_OTHERS'), String(error));
    t.false(existsSync(out), `${name}: nothing written`);
  }
  const { entry, out } = await sharedProject(t, async () => undefined);
  await chmod(join(dirname(entry), 'node_modules', 'foo', 'index.js'), 0o666);
  await t.throwsAsync(bundlePlugin({ entry, out }), { code: 'FILE_WRITABLE_BY_OTHERS', message: /foo\/index\.js: writable by group or others.*chmod go-w/ });
  t.false(existsSync(out), 'world-writable module: nothing written');
});

test('a package.json another user put in a node_modules above the project, or a tsconfig the project extends from there, cannot point an import at a file of their choosing', async (t) => {
  if (!requireRoot(t)) return;
  // Their file points at one of root's (which passes every owner check): what they choose is which file is bundled.
  const gadget = "export function greet() { return 'CHOSEN BY ANOTHER USER'; }\n";
  const planted = {
    'package.json steering a bare import': async (shared: string) => {
      await rm(join(shared, 'proj', 'node_modules'), { recursive: true });
      await writeFile(join(shared, 'gadget.js'), gadget);
      await theirs(join(shared, 'node_modules'));
      await theirs(join(shared, 'node_modules', 'foo'));
      await theirs(join(shared, 'node_modules', 'foo', 'package.json'), JSON.stringify({ name: 'foo', main: '../../gadget.js' }));
    },
    'tsconfig extended from a shared node_modules': async (shared: string) => {
      await writeFile(join(shared, 'gadget.ts'), gadget);
      await writeFile(join(shared, 'proj', 'tsconfig.json'), JSON.stringify({ extends: 'tsbase/tsconfig.json' }));
      await theirs(join(shared, 'node_modules'));
      await theirs(join(shared, 'node_modules', 'tsbase'));
      await theirs(join(shared, 'node_modules', 'tsbase', 'tsconfig.json'), JSON.stringify({ compilerOptions: { baseUrl: '.', paths: { foo: ['../../gadget.ts'] } } }));
    },
  };
  for (const [name, plant] of Object.entries(planted)) {
    const { entry, out } = await sharedProject(t, plant);
    const error = await t.throwsAsync(bundlePlugin({ entry, out }), { message: /shared\/node_modules.*owned by uid 65534.*remove it/ }, name);
    t.true(isGatehouseError(error, 'FILE_BAD_OWNER') || isGatehouseError(error, 'DIRECTORY_WRITABLE_BY_OTHERS'), `${name}: ${String(error)}`);
    t.false(existsSync(out), `${name}: nothing written`);
  }
  // The same layout with the shared files the project's own user's (root's here): bundled, from the file they point at.
  const { entry, out } = await sharedProject(t, async (shared) => {
    await writeFile(join(shared, 'gadget.ts'), gadget);
    await writeFile(join(shared, 'proj', 'tsconfig.json'), JSON.stringify({ extends: 'tsbase/tsconfig.json' }));
    await mkdir(join(shared, 'node_modules', 'tsbase'), { recursive: true });
    await writeFile(join(shared, 'node_modules', 'tsbase', 'tsconfig.json'), JSON.stringify({ compilerOptions: { baseUrl: '.', paths: { foo: ['../../gadget.ts'] } } }));
  });
  const result = await bundlePlugin({ entry, out });
  t.true(result.inputs.some((input) => input.endsWith('gadget.ts')), result.inputs.join(', '));
});

test("the project's own tsconfig.json is the only one used, and is named in the result", async (t) => {
  const { entry, out } = await sharedProject(t, async () => undefined);
  const project = dirname(entry);
  await writeFile(join(project, 'mine.ts'), "export function greet() { return 'mapped by my tsconfig'; }\n");
  await writeFile(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: { baseUrl: '.', paths: { foo: ['mine.ts'] } } }));
  const result = await bundlePlugin({ entry, out });
  t.is(result.tsconfig, join(project, 'tsconfig.json'));
  t.true(result.inputs.some((input) => input.endsWith('mine.ts')), result.inputs.join(' '));
  await rm(join(project, 'tsconfig.json'));
  const without = await bundlePlugin({ entry, out });
  t.is(without.tsconfig, undefined);
  t.true(without.inputs.some((input) => input.endsWith('foo/index.js')), without.inputs.join(' '));
});

test('a FIFO or an endless package.json above --out is refused at once, not read', async (t) => {
  const dir = await tempDir(t);
  const entry = join(dir, 'entry.mjs');
  await writeFile(entry, "console.log('ran');\n");
  const fifo = join(dir, 'fifo');
  await mkdir(fifo);
  await promisify(execFile)('mkfifo', [join(fifo, 'package.json')]);
  const huge = join(dir, 'huge');
  await mkdir(huge);
  await writeFile(join(huge, 'package.json'), `{"type":"module","pad":"${' '.repeat(1 << 20)}"}`);
  for (const [sub, why] of [[fifo, /package\.json: not a regular file/], [huge, /package\.json: larger than \d+ bytes/]] as const) {
    const out = join(sub, 'plugin.js');
    await t.throwsAsync(bundlePlugin({ entry, out }), { code: 'BUNDLE_FAILED', message: why }, sub);
    t.false(existsSync(out), 'nothing written');
  }
});

test('a module that is a FIFO, a device or larger than any module is refused before esbuild reads it, not waited on or read without end', async (t) => {
  const dir = await tempDir(t);
  await promisify(execFile)('mkfifo', [join(dir, 'fifo.mjs')]);
  // Sparse: as large as its length says, without taking the disk.
  await writeFile(join(dir, 'huge.mjs'), '');
  await truncate(join(dir, 'huge.mjs'), MAX_MODULE_BYTES + 1);
  const cases: [string, string, RegExp][] = [
    ['./fifo.mjs', 'FILE_NOT_REGULAR', /fifo\.mjs, refused: .*not a regular file/],
    ['/dev/zero', 'FILE_NOT_REGULAR', /\/dev\/zero, refused: .*not a regular file/],
    ['./huge.mjs', 'BUNDLE_FAILED', /huge\.mjs, refused: .*larger than \d+ bytes/],
  ];
  for (const [module, code, message] of cases) {
    const entry = join(dir, 'entry.mjs');
    await writeFile(entry, `import x from ${JSON.stringify(module)};\nconsole.log(x);\n`);
    const out = join(dir, 'plugin.mjs');
    // Bounded: esbuild waiting on the FIFO would otherwise hang the test.
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${module}: still bundling after 20 s`)), 20_000)));
    await t.throwsAsync(Promise.race([bundlePlugin({ entry, out }), stuck]), { code, message }, module);
    clearTimeout(timer);
    t.false(existsSync(out), 'nothing written');
  }
});
