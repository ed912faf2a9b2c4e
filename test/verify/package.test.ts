// Plugin packages: an entry plus every file it loads, sealed as a tree whose module resolution cannot leave it.
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { execFile } from 'node:child_process';
import { appendFile, chmod, readFile, realpath, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { verifyPlugins } from '../../src/verify/installed-plugins.js';
import { formatManifest, MANIFEST_SCHEMA, type Manifest } from '../../src/verify/manifest.js';
import { createManifest } from '../../src/verify/manifest-create.js';
import { generateKeyPair } from '../../src/verify/minisign-key.js';
import { createPackageEntry } from '../../src/verify/package-create.js';
import { signManifest } from '../../src/verify/sign-manifest.js';
import { sealVerifiedPlugin } from '../../src/verify/verified-plugin.js';
import { sealRootDir, tempDir, writeFileWithMode } from '../discover/temp-dir.js';

const run = promisify(execFile);
const DAY_MS = 86_400_000;

/** An eval worker's code: requires 'leak' as the package's entry would (workerData is its URL). */
const EVAL_WORKER = `const { parentPort, workerData } = require('node:worker_threads');
try { require('node:module').createRequire(workerData)('leak'); parentPort.postMessage('found'); } catch (error) { parentPort.postMessage(error.code); }`;

const MAIN = `import { fork } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import Module, { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { helper } from './lib/helper.js';
import dep from 'dep';
const data = await readFile(new URL('./data/service.proto', import.meta.url), 'utf8');
const outcome = async (load) => { try { await load(); return 'found'; } catch (error) { return error.code; } };
const leakImport = await outcome(() => import('leak'));
const leakRequire = await outcome(() => createRequire(import.meta.url)('leak'));
const leakResolve = await outcome(() => createRequire(import.meta.url).resolve('leak'));
// module.register's loader thread is the one worker in Node's report; module.registerHooks starts none.
const loaderThreads = process.report.getReport().workers.length;
const hooks = typeof Module.registerHooks === 'function' ? 'registerHooks' : 'register';
// A worker thread loads modules too: it inherits the preloaded hook through execArgv.
const worker = new Worker(new URL('./lib/worker.cjs', import.meta.url));
const leakInWorker = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
// A worker given its own execArgv would start without the preload; an eval worker never runs one.
const bare = new Worker(new URL('./lib/worker.cjs', import.meta.url), { execArgv: [] });
const leakInBareWorker = await new Promise((resolve, reject) => { bare.once('message', resolve); bare.once('error', reject); });
const evalWorker = await outcome(() => new Promise((resolve, reject) => {
  const evaluated = new Worker(${JSON.stringify(EVAL_WORKER)}, { eval: true, workerData: import.meta.url });
  evaluated.once('message', (said) => (said === 'found' ? resolve() : reject(Object.assign(new Error(said), { code: said }))));
  evaluated.once('error', reject);
}));
// A child Node.js process given its own execArgv, likewise.
const child = fork(new URL('./lib/child.cjs', import.meta.url), { execArgv: [] });
const leakInForkedChild = await new Promise((resolve, reject) => { child.once('message', resolve); child.once('error', reject); });
console.log(JSON.stringify({ helper: helper(), dep: dep.name, data: data.trim(), leakImport, leakRequire, leakResolve, leakFromDependency: dep.leak, leakInWorker, leakInBareWorker, evalWorker, leakInForkedChild, loaderThreads, hooks }));
`;

const WORKER = `const { parentPort } = require('node:worker_threads');
let required;
try { require('leak'); required = 'found'; } catch (error) { required = error.code; }
import('leak').then(() => 'found', (error) => error.code).then((imported) => parentPort.postMessage({ required, imported }));
`;

const CHILD = `let required;
try { require('leak'); required = 'found'; } catch (error) { required = error.code; }
process.send(required, () => process.disconnect());
`;

const DEP = `let leak;
try { require('leak'); leak = 'found'; } catch (error) { leak = error.code; }
module.exports = { name: 'dep', leak };
`;

/** A plugin directory with package `pkg/` (entry, a local module, a node_modules dependency, a data file). */
async function packageDir(t: ExecutionContext): Promise<string> {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'pkg/package.json', JSON.stringify({ name: 'demo', version: '1.4.2', type: 'module', main: './main.js' }), 0o644);
  await writeFileWithMode(dir, 'pkg/main.js', MAIN, 0o644);
  await writeFileWithMode(dir, 'pkg/lib/helper.js', 'export const helper = () => "local";\n', 0o644);
  await writeFileWithMode(dir, 'pkg/lib/worker.cjs', WORKER, 0o644);
  await writeFileWithMode(dir, 'pkg/lib/child.cjs', CHILD, 0o644);
  await writeFileWithMode(dir, 'pkg/data/service.proto', 'syntax = "proto3";\n', 0o644);
  await writeFileWithMode(dir, 'pkg/node_modules/dep/package.json', JSON.stringify({ name: 'dep', main: 'index.cjs' }), 0o644);
  // A CommonJS dependency, imported from ESM, that itself requires what only the seal root's parents hold.
  await writeFileWithMode(dir, 'pkg/node_modules/dep/index.cjs', DEP, 0o644);
  return dir;
}

/** Signs a manifest of the package and returns what sealVerifiedPlugin needs. */
async function signed(t: ExecutionContext, dir: string, manifest?: Manifest) {
  const made = manifest ?? (await createManifest(dir, { version: 1, expires: new Date(Date.now() + DAY_MS), packages: [{ name: 'demo', dir: 'pkg' }] }));
  const manifestPath = join(await tempDir(t), 'manifest.json');
  await writeFile(manifestPath, formatManifest(made));
  const keys = generateKeyPair();
  await writeFile(`${manifestPath}.minisig`, signManifest(await readFile(manifestPath), keys.secretKey));
  return { manifest: made, manifestPath, policy: { trustedKeys: [keys.publicKey] } };
}

/** A seal root of the test's own that also holds node_modules/leak: a module importable only from above the sealed tree. */
async function sealRootWithLeak(t: ExecutionContext): Promise<string> {
  const parentDir = await sealRootDir(t);
  await writeFileWithMode(parentDir, 'node_modules/leak/package.json', JSON.stringify({ name: 'leak', main: 'index.js' }), 0o644);
  await writeFileWithMode(parentDir, 'node_modules/leak/index.js', 'module.exports = "leaked";\n', 0o644);
  return parentDir;
}

/** What the test package reports when nothing above the sealed tree was found: each way of reaching it refused. */
const CONFINED = {
  leakImport: 'ERR_MODULE_NOT_FOUND',
  leakRequire: 'MODULE_NOT_FOUND',
  leakResolve: 'MODULE_NOT_FOUND',
  leakFromDependency: 'MODULE_NOT_FOUND',
  leakInWorker: { required: 'MODULE_NOT_FOUND', imported: 'ERR_MODULE_NOT_FOUND' },
  leakInBareWorker: { required: 'MODULE_NOT_FOUND', imported: 'ERR_MODULE_NOT_FOUND' },
  evalWorker: 'ERR_GATEHOUSE_CONFINED',
  leakInForkedChild: 'MODULE_NOT_FOUND',
};
type Ways = { [way: string]: string | Ways };
/** The same ways, each of them reaching the module: what the test package reports with no containment. */
const everyWayFound = (ways: Ways): Ways =>
  Object.fromEntries(Object.entries(ways).map(([way, outcome]) => [way, typeof outcome === 'string' ? 'found' : everyWayFound(outcome)]));
const UNCONFINED = everyWayFound(CONFINED);

/** An absolute path to a Node.js >= 22.15 for the in-thread branch, when the one running the tests is older. */
const NODE_WITH_HOOKS = 'GATEHOUSE_TEST_NODE22';

const hasRegisterHooks = (module: object): boolean => typeof (module as { registerHooks?: unknown }).registerHooks === 'function';

/** The Node running the tests if it has module.registerHooks, else the one $GATEHOUSE_TEST_NODE22 names if it has. */
async function nodeWithRegisterHooks(): Promise<string | undefined> {
  if (hasRegisterHooks(await import('node:module'))) return process.execPath;
  const other = process.env[NODE_WITH_HOOKS];
  if (other === undefined || other === '') return undefined;
  const { stdout } = await run(other, ['-p', "typeof require('node:module').registerHooks"], { env: {} });
  return stdout.trim() === 'function' ? other : undefined;
}

test('manifest create --package: entry from package.json main, version from package.json, every file listed with size and digest', async (t) => {
  const dir = await packageDir(t);
  const entry = await createPackageEntry(dir, { name: 'demo', dir: 'pkg/' });
  t.is(entry.path, 'pkg/main.js');
  t.is(entry.version, '1.4.2');
  t.is(entry.package, 'pkg');
  t.deepEqual(entry.interpreter, { path: process.execPath });
  t.deepEqual(
    entry.files?.map((file) => file.path),
    ['pkg/data/service.proto', 'pkg/lib/child.cjs', 'pkg/lib/helper.js', 'pkg/lib/worker.cjs', 'pkg/node_modules/dep/index.cjs', 'pkg/node_modules/dep/package.json', 'pkg/package.json'],
  );
  t.true(entry.files?.every((file) => /^[0-9a-f]{64}$/.test(file.sha256) && file.size > 0));
  const pinned = await createPackageEntry(dir, { name: 'demo', dir: 'pkg', entry: 'lib/helper.js', pinInterpreter: true, version: '2.0.0' });
  t.is(pinned.path, 'pkg/lib/helper.js');
  t.is(pinned.version, '2.0.0');
  t.regex(pinned.interpreter?.sha256 ?? '', /^[0-9a-f]{64}$/);
});

test('a sealed package runs from its copy: local modules, node_modules and import.meta.url data files are found; nothing above the tree is', async (t) => {
  const dir = await packageDir(t);
  const parentDir = await sealRootWithLeak(t);
  const { manifestPath, policy } = await signed(t, dir);
  const { sealed, selection } = await sealVerifiedPlugin({ manifestPath, plugin: 'demo', policy, pluginDir: dir, seal: { parentDir } });
  t.teardown(() => sealed.dispose());
  t.is(selection.reason, 'only');
  t.true(sealed.path.startsWith(sealed.dir));
  const { stdout } = await run(sealed.command, sealed.args, { env: {} });
  const hooks = hasRegisterHooks(await import('node:module')) ? 'registerHooks' : 'register';
  t.deepEqual(JSON.parse(stdout), { helper: 'local', dep: 'dep', data: 'syntax = "proto3";', ...CONFINED, loaderThreads: hooks === 'register' ? 1 : 0, hooks });

  // The control: without the containment hook, Node climbs out of the sealed tree and finds the module above it.
  const hookless = sealed.args.slice(2);
  const control = JSON.parse((await run(sealed.command, hookless, { env: {} })).stdout) as Record<string, unknown>;
  t.like(control, UNCONFINED);
});

test('under a Node with module.registerHooks, a sealed package is confined in its own thread: import and require refused, no loader thread', async (t) => {
  const node = await nodeWithRegisterHooks();
  if (node === undefined) {
    t.log(`skipped: ${process.execPath} (${process.version}) has no module.registerHooks and ${NODE_WITH_HOOKS} names no Node that has`);
    t.pass();
    return;
  }
  const dir = await packageDir(t);
  const parentDir = await sealRootWithLeak(t);
  const { manifestPath, policy } = await signed(t, dir);
  const { sealed } = await sealVerifiedPlugin({ manifestPath, plugin: 'demo', policy, pluginDir: dir, seal: { parentDir } });
  t.teardown(() => sealed.dispose());
  // The same seal as for any Node: the branch is chosen by the plugin's Node when the hook is preloaded.
  const { stdout } = await run(node, sealed.args, { env: {} });
  t.deepEqual(JSON.parse(stdout), { helper: 'local', dep: 'dep', data: 'syntax = "proto3";', ...CONFINED, loaderThreads: 0, hooks: 'registerHooks' });
  const control = JSON.parse((await run(node, sealed.args.slice(2), { env: {} })).stdout) as Record<string, unknown>;
  t.like(control, UNCONFINED);
});

/** The generated hook module's exports, as register.mjs and Node's loaders call them. */
interface ContainmentHooks {
  resolve(specifier: string, context: object, next: (specifier: string, context: object) => Promise<{ url: string }>): Promise<{ url: string }>;
  resolveSync(specifier: string, context: object, next: (specifier: string, context: object) => { url: string }): { url: string };
  install(module: object, hooksURL: URL): void;
  preloading(registerHref: string, inherited: string[]): Preload;
  confinedFork(fork: (...args: unknown[]) => unknown, preload: Preload): (...args: unknown[]) => unknown;
  confinedWorker(worker: new (...args: unknown[]) => object, preload: Preload): new (filename: string, options?: object) => object;
}

/** The execArgv to start a thread or process with, given its own (if any) and the NODE_OPTIONS it will read. */
type Preload = (execArgv: string[] | undefined, nodeOptions: string | undefined) => string[];

/** A sealed copy of the test package, its containment hook module loaded into this process, and its package root. */
async function sealedHooks(t: ExecutionContext): Promise<{ hooks: ContainmentHooks; hooksURL: URL; root: string }> {
  const dir = await packageDir(t);
  const { manifestPath, policy } = await signed(t, dir);
  const { sealed } = await sealVerifiedPlugin({ manifestPath, plugin: 'demo', policy, pluginDir: dir, seal: { parentDir: await sealRootDir(t) } });
  t.teardown(() => sealed.dispose());
  const hooksURL = pathToFileURL(join(sealed.dir, 'gatehouse-containment', 'hooks.mjs'));
  return { hooks: (await import(hooksURL.href)) as ContainmentHooks, hooksURL, root: `${await realpath(dirname(sealed.path))}/` };
}

test('the containment installs module.registerHooks where the plugin\'s Node has it, else module.register; CommonJS is confined either way', async (t) => {
  const { hooks, hooksURL, root } = await sealedHooks(t);
  const outside = '/srv/node_modules/leak/index.js';
  for (const inThread of [true, false]) {
    const calls: unknown[][] = [];
    const module: Record<string, unknown> = {
      _resolveFilename: (request: string) => (request === 'leak' ? outside : request === 'fs' ? 'fs' : `${root}lib/${request}.js`),
      isBuiltin: (file: string) => file === 'fs',
      register: (...args: unknown[]) => calls.push(['register', ...args]),
      ...(inThread ? { registerHooks: (...args: unknown[]) => calls.push(['registerHooks', ...args]) } : {}),
    };
    hooks.install(module, hooksURL);
    // The in-thread branch gets the synchronous hook; the other registers the module for the loader thread.
    t.deepEqual(calls, inThread ? [['registerHooks', { resolve: hooks.resolveSync }]] : [['register', hooksURL]]);
    const resolveFilename = module._resolveFilename as (request: string) => string;
    t.is(resolveFilename('helper'), `${root}lib/helper.js`);
    t.is(resolveFilename('fs'), 'fs');
    t.throws(() => resolveFilename('leak'), { code: 'MODULE_NOT_FOUND', message: `gatehouse: leak resolves to file://${outside}, outside the sealed plugin package ${root}` });
  }
});

test('a forked Node.js process keeps the containment preloaded, in every form of fork() and whatever execArgv it is given', async (t) => {
  const { hooks, hooksURL } = await sealedHooks(t);
  const register = new URL('./register.mjs', hooksURL).href;
  // What the plugin started with: a plugin that empties its own process.execArgv later does not change it.
  const started = ['--import', register];
  const preload = hooks.preloading(register, started);
  t.is(preload(undefined, undefined), started, 'left out, the execArgv the plugin started with, which preloads it');
  t.deepEqual(preload(['--import', register, '--x'], undefined), ['--import', register, '--x']);
  t.deepEqual(preload([`--import=${register}`], undefined), [`--import=${register}`]);
  const calls: unknown[][] = [];
  const fork = hooks.confinedFork((...args: unknown[]) => calls.push(args), preload);
  fork('a.js');
  fork('a.js', ['x']);
  fork('a.js', { execArgv: [] });
  fork('a.js', ['x'], { execArgv: ['--y'], cwd: '/' });
  t.deepEqual(calls, [
    ['a.js', [], { execArgv: started }],
    ['a.js', ['x'], { execArgv: started }],
    ['a.js', [], { execArgv: ['--import', register] }],
    ['a.js', ['x'], { execArgv: ['--import', register, '--y'], cwd: '/' }],
  ]);
});

test('a sealed package cannot fork a process or start a worker that preloads a module with --require, a loader or NODE_OPTIONS: it would load before the containment', async (t) => {
  // Attack: `fork(file, { execArgv: ['-r', 'dotenv/config'] })`, an innocent habit: Node runs every --require before
  // the --import that confines, and the bare name resolved from the working directory, where another user had
  // planted node_modules/dotenv (it ran in the sealed plugin, by hand). NODE_OPTIONS is read before the command line.
  const { hooks, hooksURL } = await sealedHooks(t);
  const register = new URL('./register.mjs', hooksURL).href;
  const preload = hooks.preloading(register, ['--import', register]);
  const fork = hooks.confinedFork(() => t.fail('forked'), preload);
  for (const execArgv of [['-r', 'dotenv/config'], ['--require', 'x'], ['--require=x'], ['--loader', 'x'], ['--experimental-loader=x']]) {
    t.throws(() => fork('a.js', { execArgv }), { code: 'ERR_GATEHOUSE_CONFINED', message: /before the containment/ }, execArgv.join(' '));
  }
  for (const NODE_OPTIONS of ['--require x', '--max-old-space-size=64 -r x', '--import x', '--import=x']) {
    t.throws(() => fork('a.js', { env: { NODE_OPTIONS } }), { code: 'ERR_GATEHOUSE_CONFINED' }, NODE_OPTIONS);
  }
  class Worker {}
  const ConfinedWorker = hooks.confinedWorker(Worker, preload);
  t.throws(() => new ConfinedWorker('w.js', { execArgv: ['-r', 'x'] }), { code: 'ERR_GATEHOUSE_CONFINED' });
  t.notThrows(() => new ConfinedWorker('w.js', { execArgv: ['--import', './local.mjs'] }), 'an --import runs after the containment, confined by it');
});

test('both ESM hooks apply the one containment rule: builtins and files inside the package pass, everything else is refused alike', async (t) => {
  const { hooks, root } = await sealedHooks(t);
  // Outcome of each hook for a resolved URL: the URL back, or the refusal's code.
  const viaSync = (url: string): string => {
    try {
      return hooks.resolveSync('x', {}, () => ({ url })).url;
    } catch (error) {
      return (error as { code: string }).code;
    }
  };
  const viaAsync = (url: string): Promise<string> => hooks.resolve('x', {}, async () => ({ url })).then(({ url }) => url, (error: { code: string }) => error.code);
  const inside = pathToFileURL(`${root}lib/helper.js`).href;
  const cases: Array<[string, boolean]> = [
    [inside, true],
    ['node:fs', true],
    // Prefix confusion: a sibling whose name starts with the package's.
    [pathToFileURL(`${root.slice(0, -1)}-evil/index.js`).href, false],
    [pathToFileURL(`${dirname(root)}/node_modules/leak/index.js`).href, false],
    ['data:text/javascript,export default 1', false],
    ['https://example.invalid/x.js', false],
  ];
  for (const [url, allowed] of cases) {
    t.is(viaSync(url), allowed ? url : 'ERR_MODULE_NOT_FOUND', url);
    t.is(await viaAsync(url), allowed ? url : 'ERR_MODULE_NOT_FOUND', url);
  }
  // Any path under the package passes; the same path under a sibling with the package's name as prefix does not.
  await fc.assert(
    fc.asyncProperty(fc.array(fc.string({ minLength: 1 }).filter((segment) => !/^\.{1,2}$/.test(segment) && !segment.includes('/')), { minLength: 1, maxLength: 4 }), async (segments) => {
      const tail = segments.join('/');
      const within = pathToFileURL(`${root}${tail}`).href;
      const sibling = pathToFileURL(`${root.slice(0, -1)}x/${tail}`).href;
      return viaSync(within) === within && (await viaAsync(within)) === within && viaSync(sibling) === 'ERR_MODULE_NOT_FOUND' && (await viaAsync(sibling)) === 'ERR_MODULE_NOT_FOUND';
    }),
  );
});

test('a file changed after signing deep in node_modules fails verification and sealing, naming the file', async (t) => {
  const dir = await packageDir(t);
  const { manifest, manifestPath, policy } = await signed(t, dir);
  // Attack: a dependency is edited after the release was signed.
  await appendFile(join(dir, 'pkg/node_modules/dep/index.cjs'), 'module.exports.evil = true;\n');
  const [result] = await verifyPlugins(manifest, dir);
  t.false(result?.ok);
  t.regex(result && !result.ok ? result.error.message : '', /node_modules\/dep\/index\.cjs/);
  const error = await t.throwsAsync(sealVerifiedPlugin({ manifestPath, plugin: 'demo', policy, pluginDir: dir, seal: { parentDir: await sealRootDir(t) } }));
  t.regex(error?.message ?? '', /node_modules\/dep\/index\.cjs/);
});

test('a file added to a package after signing fails verification as PACKAGE_FILE_UNLISTED, naming it', async (t) => {
  const dir = await packageDir(t);
  const { manifest, manifestPath, policy } = await signed(t, dir);
  // Attack: a module planted beside the signed ones, e.g. one that shadows a dependency.
  await writeFileWithMode(dir, 'pkg/node_modules/planted/index.js', 'process.exit(7);\n', 0o644);
  const [result] = await verifyPlugins(manifest, dir);
  t.like(result && !result.ok ? result.error : {}, { code: 'PACKAGE_FILE_UNLISTED', details: { file: 'pkg/node_modules/planted/index.js' } });
  await t.throwsAsync(sealVerifiedPlugin({ manifestPath, plugin: 'demo', policy, pluginDir: dir, seal: { parentDir: await sealRootDir(t) } }), {
    code: 'PACKAGE_FILE_UNLISTED',
  });
});

test('symbolic links inside a package are refused, when creating the manifest and when verifying', async (t) => {
  const dir = await packageDir(t);
  const { manifest } = await signed(t, dir);
  // A link could later be pointed at unsigned bytes; packages hold regular files only.
  await symlink('index.cjs', join(dir, 'pkg/node_modules/dep/alias.cjs'));
  await t.throwsAsync(createPackageEntry(dir, { name: 'demo', dir: 'pkg' }), { code: 'PACKAGE_SYMLINK' });
  const [result] = await verifyPlugins(manifest, dir);
  t.is(result && !result.ok ? result.error.code : undefined, 'PACKAGE_SYMLINK');
});

test('a package entry must keep its files inside the package and name an interpreter', (t) => {
  const base = { name: 'p', path: 'pkg/main.js', sha256: 'a'.repeat(64), size: 1, package: 'pkg', interpreter: { path: '/usr/bin/node' } };
  const manifest = (plugin: object) => formatManifest({ schema: MANIFEST_SCHEMA, version: 1, expires: '2099-01-01T00:00:00Z', plugins: [plugin] } as Manifest);
  t.notThrows(() => manifest(base));
  t.throws(() => manifest({ ...base, path: 'other/main.js' }), { code: 'MANIFEST_INVALID', message: /does not contain/ });
  t.throws(() => manifest({ ...base, files: [{ path: 'elsewhere.js', sha256: 'b'.repeat(64), size: 1 }] }), { code: 'MANIFEST_INVALID' });
  t.throws(() => manifest({ ...base, interpreter: undefined }), { code: 'MANIFEST_INVALID', message: /interpreter/ });
});

test('a package sealed for a run-as group runs as that user: its containment hook is readable, not writable, by the group', async (t) => {
  if (process.geteuid?.() !== 0) {
    t.log('skipped: running a plugin as another user needs root');
    t.pass();
    return;
  }
  const NOBODY = 65534;
  const dir = await packageDir(t);
  const parentDir = await sealRootDir(t);
  // The run-as user must be able to pass through the test's own root to reach its copy.
  await chmod(parentDir, 0o711);
  const { manifestPath, policy } = await signed(t, dir);
  const { sealed } = await sealVerifiedPlugin({ manifestPath, plugin: 'demo', policy, pluginDir: dir, seal: { parentDir, group: NOBODY } });
  t.teardown(() => sealed.dispose());
  const asNobody = ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', sealed.command, ...sealed.args];
  const { stdout } = await run('/usr/bin/setpriv', asNobody, { env: {} });
  t.like(JSON.parse(stdout), { helper: 'local', dep: 'dep', leakImport: 'ERR_MODULE_NOT_FOUND' });
  const hook = await stat(join(sealed.dir, 'gatehouse-containment', 'hooks.mjs'));
  t.deepEqual([hook.uid, hook.gid, hook.mode & 0o777], [0, NOBODY, 0o440]);
});
