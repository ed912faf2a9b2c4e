// Issue 11 item 1: a sealed copy inherits whatever sits above its directory, so the seal root must be the
// host's all the way up to `/`. Each attack is played as the review did: the "other user" is nobody.
import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, realpath, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { isGatehouseError } from '../../src/errors.js';
import { pidScope, processStartTime } from '../../src/process-identity.js';
import { sha256File } from '../../src/verify/hash.js';
import { defaultSealRoot, prepareSealRoot } from '../../src/verify/seal-root.js';
import { sealPlugin, type SealablePlugin } from '../../src/verify/seal.js';
import { runningAsRoot, sealRootDir, tempDir, writeFileWithMode } from '../discover/temp-dir.js';

const run = promisify(execFile);
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const NOBODY = 65534;

/** Runs a sealed plugin with an empty environment (no NODE_PATH, PYTHONPATH or HOME to blur the test). */
async function runSealed(command: string, args: string[]): Promise<string> {
  return (await run(command, args, { env: {} })).stdout;
}

/**
 * A temporary directory like /tmp (1777), made the process's TMPDIR for one test: before this fix seals
 * went under os.tmpdir(). Files planted in it are given to nobody, as another user would have made them.
 */
async function sharedTmpdir(t: ExecutionContext): Promise<string> {
  const shared = await mkdtemp(join(tmpdir(), 'gatehouse-shared-tmp-'));
  await chmod(shared, 0o1777);
  const before = process.env['TMPDIR'];
  process.env['TMPDIR'] = shared;
  t.teardown(async () => {
    if (before === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = before;
    await rm(shared, { recursive: true, force: true });
  });
  return shared;
}

async function plant(dir: string, name: string, content: string): Promise<void> {
  await writeFileWithMode(dir, name, content, 0o644);
  await run('/bin/chown', ['-R', `${NOBODY}:${NOBODY}`, join(dir, name.split('/')[0] ?? name)]);
}

/** A Node plugin (interpreter node, unpinned) whose script is `source`. */
async function nodePlugin(t: ExecutionContext, source: string): Promise<{ entry: SealablePlugin; pluginDir: string }> {
  const pluginDir = await tempDir(t);
  await writeFileWithMode(pluginDir, 'main.js', source, 0o644);
  return { pluginDir, entry: { name: 'node-plugin', path: 'main.js', sha256: sha256(source), size: source.length, interpreter: { path: process.execPath } } };
}

test.serial('a sealed Node plugin never loads node_modules another user planted in TMPDIR', async (t) => {
  const shared = await sharedTmpdir(t);
  // Attack: nobody plants a package named like the plugin's bare import where the walk up from the seal reaches.
  await plant(shared, 'node_modules/helper/index.js', "module.exports = 'PLANTED';\n");
  const { entry, pluginDir } = await nodePlugin(t, "let found = 'none';\ntry { found = require('helper'); } catch {}\nprocess.stdout.write(found);\n");
  await using sealed = await sealPlugin(entry, pluginDir);
  t.is(await runSealed(sealed.command, sealed.args), 'none');
  t.false(sealed.dir.startsWith(shared), 'the seal is not under TMPDIR');
});

test.serial('a package.json another user planted in TMPDIR does not change how a sealed .js loads', async (t) => {
  const shared = await sharedTmpdir(t);
  // Attack: "type": "module" above the seal turns the plugin's CommonJS into ESM (or the reverse).
  await plant(shared, 'package.json', '{"type": "module"}\n');
  const { entry, pluginDir } = await nodePlugin(t, 'process.stdout.write(typeof require);\n');
  await using sealed = await sealPlugin(entry, pluginDir);
  t.is(await runSealed(sealed.command, sealed.args), 'function');
});

test.serial('a sealed python3 never takes its standard library (sitecustomize) from another user in TMPDIR', async (t) => {
  let python: string;
  try {
    python = await realpath('/usr/bin/python3');
  } catch {
    t.log('skipped: no /usr/bin/python3');
    t.pass();
    return;
  }
  const shared = await sharedTmpdir(t);
  // Attack: lib/pythonX.Y above the sealed interpreter is taken as its prefix; nobody links the real library in and adds sitecustomize.
  const lib = join(shared, 'lib', basename(python));
  await mkdir(lib, { recursive: true });
  for (const name of await readdir(join('/usr/lib', basename(python)))) {
    if (name !== 'sitecustomize.py') await symlink(join('/usr/lib', basename(python), name), join(lib, name));
  }
  await plant(shared, `lib/${basename(python)}/sitecustomize.py`, "print('PLANTED')\n");
  const pluginDir = await tempDir(t);
  await writeFileWithMode(pluginDir, 'main.py', "print('ok')\n", 0o644);
  const pinned = await sha256File(python);
  await using sealed = await sealPlugin(
    { name: 'py', path: 'main.py', sha256: sha256("print('ok')\n"), size: 12, interpreter: { path: python, sha256: pinned.sha256, size: pinned.size } },
    pluginDir,
  );
  t.is(await runSealed(sealed.command, sealed.args), 'ok\n');
});

/** Seals a plugin under `parentDir`, then, as nobody, renames the seal away and puts a script of theirs in its place. */
async function sealThenSwap(t: ExecutionContext, parentDir: string, openDir: string): Promise<unknown> {
  const pluginDir = await tempDir(t);
  const good = '#!/bin/sh\necho good\n';
  await writeFileWithMode(pluginDir, 'plugin', good, 0o755);
  let sealed;
  try {
    sealed = await sealPlugin({ name: 'p', path: 'plugin', sha256: sha256(good), size: good.length }, pluginDir, { parentDir });
  } catch (error) {
    return error;
  }
  const swap = 'mv "$1" "$2/aside" && mkdir -p "$1/plugin" && printf "#!/bin/sh\\necho evil\\n" > "$1/plugin/plugin" && chmod 755 "$1/plugin/plugin"';
  await run('/usr/bin/setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '/bin/sh', '-c', swap, 'swap', sealed.dir, openDir]);
  return runSealed(sealed.command, sealed.args);
}

for (const via of ['directly', 'through a symbolic link'] as const) {
  test(`a seal root in a directory others can write (not sticky), named ${via}, is SEAL_ROOT_UNSAFE: the seal cannot be swapped`, async (t) => {
    if (!runningAsRoot) {
      t.log('skipped: acting as another user needs root');
      t.pass();
      return;
    }
    // Under a safe root, so that `open` is the one thing wrong with the chain.
    const base = await sealRootDir(t);
    const openDir = join(base, 'open');
    await mkdir(openDir);
    await chmod(openDir, 0o777);
    await chmod(base, 0o755);
    const parentDir = via === 'directly' ? openDir : join(base, 'link');
    if (via !== 'directly') await symlink(openDir, parentDir);
    const outcome = await sealThenSwap(t, parentDir, openDir);
    t.not(outcome, 'evil\n', "the host ran the other user's binary from the seal's path");
    t.true(isGatehouseError(outcome, 'SEAL_ROOT_UNSAFE'), String(outcome));
    t.regex((outcome as Error).message, /open: writable by group or others/);
    t.regex((outcome as Error).message, /seal\.parentDir/);
  });
}

test('a seal root under a sticky /tmp-like directory is SEAL_ROOT_UNSAFE, and so is one owned by another user', async (t) => {
  const base = await sealRootDir(t);
  await chmod(base, 0o1777);
  await t.throwsAsync(prepareSealRoot({ parentDir: join(base, 'seal') }), { code: 'SEAL_ROOT_UNSAFE', message: /writable by group or others \(mode 1777\)/ });
  await t.throwsAsync(sealPlugin({ name: 'p', path: 'p', sha256: sha256('') }, base, { parentDir: tmpdir() }), { code: 'SEAL_ROOT_UNSAFE' });
  if (runningAsRoot) {
    const theirs = await sealRootDir(t);
    await run('/bin/chown', [`${NOBODY}:${NOBODY}`, theirs]);
    await t.throwsAsync(prepareSealRoot({ parentDir: theirs }), { code: 'SEAL_ROOT_UNSAFE', message: /owned by uid 65534/ });
  }
});

test('the default seal root is made if missing, is the host user\'s, and is not under the temporary directory', async (t) => {
  const root = await prepareSealRoot();
  t.is(root, await realpath(defaultSealRoot()));
  t.false(root.startsWith(tmpdir()));
  await t.throwsAsync(prepareSealRoot({ parentDir: 'relative/seal' }), { code: 'INVALID_OPTIONS' });
});

test.serial('a seal root made under a restrictive umask (077) has exactly its mode: 0711 for root, which run-as plugins pass through', async (t) => {
  // umask is the process's: serial, and set back before the next test runs.
  const made = join(await sealRootDir(t), 'made', 'seal');
  const previous = process.umask(0o077);
  try {
    await prepareSealRoot({ parentDir: made });
  } finally {
    process.umask(previous);
  }
  const expected = runningAsRoot ? 0o711 : 0o700;
  t.is((await stat(made)).mode & 0o777, expected);
  t.is((await stat(join(made, '..'))).mode & 0o777, expected, 'the missing parent made with it');
});

test('a run-as group that cannot reach the seal root is SEAL_ROOT_UNSAFE before anything is copied', async (t) => {
  const root = await sealRootDir(t);
  await t.throwsAsync(prepareSealRoot({ parentDir: root, group: NOBODY }), { code: 'SEAL_ROOT_UNSAFE', message: /not searchable by group 65534/ });
});

test('a seal root under a directory others can write, or named through a link another user planted, is refused before anything is made there', async (t) => {
  const base = await sealRootDir(t);
  await chmod(base, 0o711);
  const open = join(base, 'open');
  await mkdir(open);
  await chmod(open, 0o777);
  await t.throwsAsync(prepareSealRoot({ parentDir: join(open, 'made', 'seal') }), { code: 'SEAL_ROOT_UNSAFE', message: /open: writable by group or others/ });
  t.deepEqual(await readdir(open), [], 'no directory made where another user can rename it');
  if (!runningAsRoot) {
    t.log('the planted link: skipped, acting as another user needs root');
    return;
  }
  // Attack: nobody plants a link where root's --seal-dir leads, to have root make a directory wherever it points.
  const target = join(base, 'target');
  await mkdir(target);
  await chmod(target, 0o755);
  const shared = join(base, 'shared');
  await mkdir(shared);
  await chmod(shared, 0o1777);
  await run('/usr/bin/setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '/bin/ln', '-s', target, join(shared, 'link')]);
  await t.throwsAsync(prepareSealRoot({ parentDir: join(shared, 'link', 'seal') }), { code: 'SEAL_ROOT_UNSAFE' });
  t.deepEqual(await readdir(target), [], 'nothing made where the link points');
});

test("a host's first seal removes the sealed copies a dead host of the same user and PID namespace left in the root; a live host's, another namespace's and unnamed ones stay", async (t) => {
  const root = await sealRootDir(t);
  const scope = await pidScope();
  // A host killed by SIGKILL runs no exit hook: its copies stay, named with its pid and start time.
  const dead = spawn('/bin/sleep', ['30']);
  const deadExit = once(dead, 'exit');
  const deadStart = await processStartTime(dead.pid!);
  dead.kill('SIGKILL');
  await deadExit;
  const live = spawn('/bin/sleep', ['30']);
  t.teardown(() => live.kill('SIGKILL'));
  const liveStart = await processStartTime(live.pid!);
  const copies = {
    dead: `gatehouse-seal-p${scope}-${dead.pid}-${deadStart}-aaaaaa`,
    live: `gatehouse-seal-p${scope}-${live.pid}-${liveStart}-bbbbbb`,
    // In another PID namespace, or on another machine, the pid names another process, or none: nothing can be judged from here.
    elsewhere: `gatehouse-seal-p1.${'0'.repeat(32)}-${dead.pid}-${deadStart}-cccccc`,
    unnamed: 'gatehouse-seal-dddddd',
  };
  for (const name of Object.values(copies)) {
    await writeFileWithMode(join(root, name), 'plugin/kv', 'sealed bytes', 0o500);
    await chmod(join(root, name), 0o700);
  }
  const { entry, pluginDir } = await nodePlugin(t, 'process.exit(0);\n');
  await using sealed = await sealPlugin(entry, pluginDir, { parentDir: root });
  t.regex(basename(sealed.dir), new RegExp(`^gatehouse-seal-p${scope}-${process.pid}-${await processStartTime(process.pid)}-\\w{6}$`), 'its own copy names its host');
  t.deepEqual((await readdir(root)).sort(), [copies.elsewhere, copies.live, copies.unnamed, basename(sealed.dir)].sort());
});
