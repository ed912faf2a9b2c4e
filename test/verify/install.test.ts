// Installing signed releases: verified before anything changes, switched in one rename, locked, rolled back by policy.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, chmod, chown, lstat, mkdir, readdir, readFile, readlink, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GatehouseError } from '../../src/errors.js';
import { readArchive, writeArchive } from '../../src/verify/archive.js';
import { LEASE_EXPIRY_MS, processStartTime } from '../../src/process-identity.js';
import { installRelease, releasesDir, rollbackRelease, verifyInstalled } from '../../src/verify/install.js';
import { formatManifest } from '../../src/verify/manifest.js';
import { createManifest } from '../../src/verify/manifest-create.js';
import { generateKeyPair, type MinisignSecretKey } from '../../src/verify/minisign-key.js';
import { createRelease } from '../../src/verify/release.js';
import { MemoryRollbackState } from '../../src/verify/rollback-state.js';
import { runningAsRoot, tempDir, writeFileWithMode } from '../discover/temp-dir.js';
import { repoRoot } from '../helpers/paths.js';

const DAY_MS = 86_400_000;
const NOBODY = 65534;
const run = promisify(execFile);

/** Runs the shell `script` (with `args` as $1...) as nobody: another local user. */
async function asNobody(script: string, ...args: string[]): Promise<void> {
  await run('/usr/bin/setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '/bin/sh', '-c', script, 'sh', ...args]);
}

/** A directory like /tmp (root's, 1777): anyone may add entries, only their owner remove them. */
async function stickyDir(t: ExecutionContext): Promise<string> {
  const dir = await tempDir(t);
  await chmod(dir, 0o1777);
  return dir;
}

/** Every entry of `dir` with what it is: a link's target, a file's content, or `dir/` and its entries. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const info = await lstat(path);
    if (info.isSymbolicLink()) out[name] = `-> ${await readlink(path)}`;
    else if (info.isDirectory()) out[name] = `dir/ ${(await readdir(path)).sort().join(' ')}`;
    else out[name] = await readFile(path, 'utf8');
  }
  return out;
}

/** A release archive of version `version`: one executable plugin printing the version. */
async function release(t: ExecutionContext, secretKey: MinisignSecretKey, version: number): Promise<string> {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'plugin', `#!/bin/sh\necho ${version}\n`, 0o755);
  const manifest = await createManifest(dir, { version, expires: new Date(Date.now() + DAY_MS) });
  await writeFile(join(dir, 'manifest.json'), formatManifest(manifest));
  const out = join(await tempDir(t), `release-${version}.tar.gz`);
  await createRelease(dir, secretKey, out);
  return out;
}

async function setup(t: ExecutionContext) {
  const keys = generateKeyPair();
  const into = join(await tempDir(t), 'plugins');
  return { keys, into, policy: { trustedKeys: [keys.publicKey] } };
}

test('install: a verified release goes behind the plugins link in one rename; a newer one keeps it as previous; rollback returns to it', async (t) => {
  const { keys, into, policy } = await setup(t);
  const first = await installRelease({ source: await release(t, keys.secretKey, 1), into, policy });
  t.true((await lstat(into)).isSymbolicLink());
  t.is(await readlink(into), first.release);
  t.is(await readFile(join(into, 'plugin'), 'utf8'), '#!/bin/sh\necho 1\n');
  t.like(first.lock, { current: { manifestVersion: 1, plugins: [{ name: 'plugin' }] } });
  t.is(first.lock.previous, undefined);
  await verifyInstalled(into);

  const second = await installRelease({ source: await release(t, keys.secretKey, 2), into, policy });
  t.like(second.lock, { current: { manifestVersion: 2 }, previous: { manifestVersion: 1 } });
  t.is(await readFile(join(into, 'plugin'), 'utf8'), '#!/bin/sh\necho 2\n');
  await t.throwsAsync(installRelease({ source: await release(t, keys.secretKey, 1), into, policy }), { code: 'MANIFEST_ROLLBACK' });
  await t.throwsAsync(installRelease({ source: await release(t, keys.secretKey, 2), into, policy }), { code: 'MANIFEST_ROLLBACK', message: /already installed/ });

  const back = await rollbackRelease({ into, policy });
  t.like(back.lock, { current: { manifestVersion: 1 }, previous: { manifestVersion: 2 } });
  t.is(await readFile(join(into, 'plugin'), 'utf8'), '#!/bin/sh\necho 1\n');
  await verifyInstalled(into);
  t.deepEqual((await readdir(releasesDir(into))).sort(), [first.release, second.release].map((path) => path.split('/').at(-1)).sort());
});

test('install: with a rollback state, rollback is refused (that is what the state is for); the state rises only once installed', async (t) => {
  const { keys, into, policy } = await setup(t);
  const state = new MemoryRollbackState();
  await installRelease({ source: await release(t, keys.secretKey, 1), into, policy: { ...policy, state } });
  await t.throwsAsync(installRelease({ source: await release(t, generateKeyPair().secretKey, 5), into, policy: { ...policy, state } }));
  t.is(await state.highestVersion(), 1, 'a refused release does not raise the state');
  await installRelease({ source: await release(t, keys.secretKey, 2), into, policy: { ...policy, state } });
  t.is(await state.highestVersion(), 2);
  await t.throwsAsync(rollbackRelease({ into, policy: { ...policy, state } }), { code: 'MANIFEST_ROLLBACK' });
  t.is(await readFile(join(into, 'plugin'), 'utf8'), '#!/bin/sh\necho 2\n');
});

test('install: a hostile or tampered release changes nothing: same link, same lock, no leftover directory', async (t) => {
  const { keys, into, policy } = await setup(t);
  await installRelease({ source: await release(t, keys.secretKey, 1), into, policy });
  const link = await readlink(into);
  const lock = await readFile(`${into}.lock.json`, 'utf8');
  const releases = await readdir(releasesDir(into));
  const good = await release(t, keys.secretKey, 2);
  const files = readArchive(await readFile(good));
  const dir = await tempDir(t);
  const attempts: Record<string, Buffer> = {
    // Attack: a file of the signed release replaced in transit.
    tampered: writeArchive(files.map((f) => (f.path === 'plugin' ? { ...f, data: Buffer.from('#!/bin/sh\necho evil\n') } : f))),
    // Attack: an unsigned extra file riding along with signed ones.
    unlisted: writeArchive([...files, { path: 'extra', data: Buffer.from('x'), executable: true }]),
    // Attack: a symbolic link entry pointing out of the install.
    link: (() => {
      const tar = gunzipSync(writeArchive([{ path: 'evil', data: Buffer.alloc(0), executable: false }]));
      tar.write('2', 156, 'latin1');
      tar.fill(0x20, 148, 156);
      let sum = 0;
      for (const byte of tar.subarray(0, 512)) sum += byte;
      tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      return gzipSync(tar);
    })(),
    unsigned: writeArchive(files.filter((f) => !f.path.endsWith('.minisig'))),
    // Attack: a file that is also a directory (plugin, plugin/x): extraction must not stop half-way.
    fileAndDirectory: writeArchive([...files, { path: 'plugin/x', data: Buffer.from('x'), executable: false }]),
  };
  for (const [name, bytes] of Object.entries(attempts)) {
    const source = join(dir, `${name}.tar.gz`);
    await writeFile(source, bytes);
    await t.throwsAsync(installRelease({ source, into, policy }), undefined, name);
    t.is(await readlink(into), link, name);
    t.is(await readFile(`${into}.lock.json`, 'utf8'), lock, name);
    t.deepEqual(await readdir(releasesDir(into)), releases, name);
  }
});

test('verify --lock: a file changed in the installed release is found, naming it', async (t) => {
  const { keys, into, policy } = await setup(t);
  await installRelease({ source: await release(t, keys.secretKey, 1), into, policy });
  await appendFile(join(into, 'plugin'), '# changed\n');
  const error = await t.throwsAsync(verifyInstalled(into));
  t.regex(error?.message ?? '', /plugin/);
});

test('verify --lock: a lock file another user owns or others can write, or another user\'s link to it, is refused before it is read, as install refuses it', async (t) => {
  const { keys, into, policy } = await setup(t);
  await installRelease({ source: await release(t, keys.secretKey, 1), into, policy });
  const lockPath = `${into}.lock.json`;
  // Attack: whoever can write the lock file says which release is the right one.
  await chmod(lockPath, 0o666);
  await t.throwsAsync(verifyInstalled(into), { code: 'FILE_WRITABLE_BY_OTHERS', message: /lock\.json: writable by group or others/ });
  await chmod(lockPath, 0o644);
  await verifyInstalled(into);
  if (!runningAsRoot) {
    t.log('not root: another user\'s lock file and link are not tried');
    return;
  }
  await chown(lockPath, NOBODY, NOBODY);
  await t.throwsAsync(verifyInstalled(into), { code: 'FILE_BAD_OWNER', message: /lock\.json: owned by uid 65534/ });
  await chown(lockPath, 0, 0);
  // Attack: another user's link in a sticky directory, which they can re-point at a lock file of their own at any time.
  const sticky = await stickyDir(t);
  await asNobody('ln -s "$1" "$2/lock.json"', lockPath, sticky);
  await t.throwsAsync(verifyInstalled(into, join(sticky, 'lock.json')), { code: 'FILE_BAD_OWNER', message: /lock\.json: symbolic link owned by uid 65534/ });
});

test('release archives are reproducible and install from a release directory too', async (t) => {
  const { keys, into, policy } = await setup(t);
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'plugin', '#!/bin/sh\necho 1\n', 0o755);
  await writeFile(join(dir, 'manifest.json'), formatManifest(await createManifest(dir, { version: 1, expires: new Date('2099-01-01T00:00:00Z') })));
  const [a, b] = [join(await tempDir(t), 'a.tar.gz'), join(await tempDir(t), 'b.tar.gz')];
  await createRelease(dir, keys.secretKey, a);
  await createRelease(dir, keys.secretKey, b);
  t.deepEqual(await readFile(a), await readFile(b));
  const unpacked = await tempDir(t);
  await promisify(execFile)('/usr/bin/tar', ['-xzf', a, '-C', unpacked], { cwd: repoRoot });
  await installRelease({ source: unpacked, into, policy });
  t.is(await readFile(join(into, 'plugin'), 'utf8'), '#!/bin/sh\necho 1\n');
});

test('install: a plugins path that is a real directory is refused before anything is unpacked, and fixing it lets the same release install', async (t) => {
  const { keys, into, policy } = await setup(t);
  await writeFileWithMode(into, 'keep-me', 'not ours', 0o644);
  const source = await release(t, keys.secretKey, 1);
  await t.throwsAsync(installRelease({ source, into, policy }), { code: 'INVALID_OPTIONS', message: /not a link made by gatehouse install/ });
  t.deepEqual(await readdir(releasesDir(into)).catch(() => []), [], 'no release directory left behind to block the next try');
  t.is(await readFile(join(into, 'keep-me'), 'utf8'), 'not ours');
  await rm(into, { recursive: true });
  t.like((await installRelease({ source, into, policy })).lock, { current: { manifestVersion: 1 } });
});

test('install: a plugins path or releases directory that cannot be made fails with a GatehouseError naming it, not a raw Node error', async (t) => {
  const { keys, into, policy } = await setup(t);
  const source = await release(t, keys.secretKey, 1);
  await writeFile(releasesDir(into), 'a file where the releases directory goes');
  await t.throwsAsync(installRelease({ source, into, policy }), { instanceOf: GatehouseError, message: new RegExp(releasesDir(into)) });
  const underFile = join(releasesDir(into), 'plugins');
  await t.throwsAsync(installRelease({ source, into: underFile, policy }), { instanceOf: GatehouseError, message: new RegExp(releasesDir(into)) });
});

test('install: the release directory is readable by a host running as another user (0755), as its files are', async (t) => {
  const { keys, into, policy } = await setup(t);
  const installed = await installRelease({ source: await release(t, keys.secretKey, 1), into, policy });
  t.is((await stat(installed.release)).mode & 0o777, 0o755);
  t.is((await stat(join(installed.release, 'plugin'))).mode & 0o777, 0o755);
});

test.serial('install: a restrictive umask (077) changes no mode: releases, their directories, files and lock file stay readable by a host running as another user', async (t) => {
  // umask is the process's: serial, and set back before the next test runs.
  const { keys, into, policy } = await setup(t);
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'plugin', '#!/bin/sh\necho 1\n', 0o755);
  await mkdir(join(dir, 'lib', 'deep'), { recursive: true });
  await writeFileWithMode(join(dir, 'lib', 'deep'), 'data.txt', 'data\n', 0o644);
  const manifest = await createManifest(dir, { version: 1, expires: new Date(Date.now() + DAY_MS) });
  const data = { path: 'lib/deep/data.txt', sha256: createHash('sha256').update('data\n').digest('hex'), size: 5 };
  await writeFile(join(dir, 'manifest.json'), formatManifest({ ...manifest, plugins: manifest.plugins.map((plugin) => ({ ...plugin, files: [data] })) }));
  const source = join(await tempDir(t), 'release.tar.gz');
  await createRelease(dir, keys.secretKey, source);
  const previous = process.umask(0o077);
  let installed;
  try {
    installed = await installRelease({ source, into, policy });
  } finally {
    process.umask(previous);
  }
  const mode = async (path: string) => (await stat(path)).mode & 0o777;
  t.is(await mode(releasesDir(into)), 0o755, 'the releases directory');
  t.is(await mode(installed.release), 0o755, 'the release');
  t.is(await mode(join(installed.release, 'lib')), 0o755);
  t.is(await mode(join(installed.release, 'lib', 'deep')), 0o755);
  t.is(await mode(join(installed.release, 'plugin')), 0o755);
  t.is(await mode(join(installed.release, 'lib', 'deep', 'data.txt')), 0o644);
  t.is(await mode(join(installed.release, 'manifest.json')), 0o644);
  t.is(await mode(`${into}.lock.json`), 0o644, 'the lock file, which a host reads');
  await verifyInstalled(into);
});

/** What a failed install must leave as it was: where the link points, the lock file, the releases kept. */
async function installedState(into: string, lockPath = `${into}.lock.json`) {
  return {
    link: await readlink(into).catch((error: NodeJS.ErrnoException) => error.code),
    lock: await readFile(lockPath, 'utf8').catch((error: NodeJS.ErrnoException) => error.code),
    releases: (await readdir(releasesDir(into)).catch(() => [])).sort(),
  };
}

test('install: a failure after the link switch (the state cannot be raised) switches it back: link, lock file, state and releases as they were; the same install then succeeds', async (t) => {
  const { keys, into, policy } = await setup(t);
  const memory = new MemoryRollbackState();
  await installRelease({ source: await release(t, keys.secretKey, 1), into, policy: { ...policy, state: memory } });
  const before = await installedState(into);
  const source = await release(t, keys.secretKey, 2);
  const failing = { highestVersion: () => memory.highestVersion(), accept: () => Promise.reject(new GatehouseError('FILE_UNWRITABLE', 'state: disk full')) };
  await t.throwsAsync(installRelease({ source, into, policy: { ...policy, state: failing } }), { code: 'FILE_UNWRITABLE', message: 'state: disk full' });
  t.deepEqual(await installedState(into), before);
  t.is(await memory.highestVersion(), 1);
  await verifyInstalled(into);
  t.like((await installRelease({ source, into, policy: { ...policy, state: memory } })).lock, { current: { manifestVersion: 2 }, previous: { manifestVersion: 1 } });
  t.is(await memory.highestVersion(), 2);
});

test('install: a lock file that cannot be written fails before the link is made or switched', async (t) => {
  const { keys, into, policy } = await setup(t);
  const lockPath = join(await tempDir(t), 'missing', 'plugins.lock.json');
  await t.throwsAsync(installRelease({ source: await release(t, keys.secretKey, 1), into, policy, lockPath }), { code: 'FILE_NOT_FOUND', message: /create it first/ });
  t.deepEqual(await installedState(into, lockPath), { link: 'ENOENT', lock: 'ENOENT', releases: [] });
});

test('install: two installs into the same plugins directory at once never both go ahead: the link points at the release the lock file records, and a version reported installed is never replaced by an older one', async (t) => {
  const { keys, policy } = await setup(t);
  const [one, two, three] = [await release(t, keys.secretKey, 1), await release(t, keys.secretKey, 2), await release(t, keys.secretKey, 3)];
  for (let round = 0; round < 5; round += 1) {
    const into = join(await tempDir(t), 'plugins');
    await installRelease({ source: one, into, policy });
    const [v2, v3] = await Promise.allSettled([installRelease({ source: two, into, policy }), installRelease({ source: three, into, policy })]);
    for (const outcome of [v2, v3]) if (outcome.status === 'rejected') t.regex((outcome.reason as GatehouseError).code, /^(INSTALL_LOCKED|MANIFEST_ROLLBACK)$/);
    const lock = await verifyInstalled(into);
    if (v3.status === 'fulfilled') t.is(lock.current.manifestVersion, 3, 'v3 was reported installed');
    t.is(await readFile(join(into, 'plugin'), 'utf8'), `#!/bin/sh\necho ${lock.current.manifestVersion}\n`);
  }
});

test('install: the lock PLUGINS_DIR.lck held by a running install is refused with INSTALL_LOCKED and left alone; one left by an install that died is taken over', async (t) => {
  const { keys, into, policy } = await setup(t);
  const source = await release(t, keys.secretKey, 1);
  const held = `${process.pid} ${await processStartTime(process.pid)}\n`;
  await writeFile(`${into}.lck`, held);
  await t.throwsAsync(installRelease({ source, into, policy }), { code: 'INSTALL_LOCKED', message: /is running.*remove/ });
  await t.throwsAsync(rollbackRelease({ into, policy }), { code: 'INSTALL_LOCKED' });
  t.is(await readFile(`${into}.lck`, 'utf8'), held, 'the holder keeps its lock');
  t.deepEqual(await installedState(into), { link: 'ENOENT', lock: 'ENOENT', releases: [] });
  // Above the largest pid Linux hands out: a holder that is gone. Then our own pid with another start time: reused.
  for (const [i, stale] of ['4194305 1\n', `${process.pid} 1\n`].entries()) {
    await writeFile(`${into}.lck`, stale);
    await installRelease({ source: await release(t, keys.secretKey, i + 1), into, policy });
    await t.throwsAsync(readFile(`${into}.lck`), { code: 'ENOENT' }, 'released once done');
  }
});

test('install: a lock held in another PID namespace or on another machine is INSTALL_LOCKED while its holder refreshes it, and taken over once it has aged', async (t) => {
  const { keys, into, policy } = await setup(t);
  // The holder's pid names nobody here, which says nothing about whether it runs there.
  const elsewhere = `4194305 1 1.${'0'.repeat(32)}\n`;
  await writeFile(`${into}.lck`, elsewhere);
  await t.throwsAsync(installRelease({ source: await release(t, keys.secretKey, 1), into, policy }), {
    code: 'INSTALL_LOCKED',
    message: /pid 4194305 in another PID namespace or on another machine, its lock refreshed 0 s ago.*if none is running, remove/,
  });
  t.is(await readFile(`${into}.lck`, 'utf8'), elsewhere, 'the holder keeps its lock');
  const old = new Date(Date.now() - 2 * LEASE_EXPIRY_MS);
  await utimes(`${into}.lck`, old, old);
  await installRelease({ source: await release(t, keys.secretKey, 1), into, policy });
  await t.throwsAsync(readFile(`${into}.lck`), { code: 'ENOENT' }, 'released once done');
});

test('install: leftovers of interrupted installs (unverified staging files, a release placed but never switched in) go at the next install; names install does not make stay', async (t) => {
  const { keys, into, policy } = await setup(t);
  const first = await installRelease({ source: await release(t, keys.secretKey, 1), into, policy });
  const source = await release(t, keys.secretKey, 2);
  const manifest = readArchive(await readFile(source)).find((file) => file.path === 'manifest.json');
  const placed = `v2-${createHash('sha256').update(manifest?.data ?? '').digest('hex').slice(0, 12)}`;
  await writeFileWithMode(releasesDir(into), '.staging-Ab12Cd/plugin', '#!/bin/sh\necho unverified\n', 0o755);
  await writeFileWithMode(releasesDir(into), `${placed}/half-written`, 'killed before the switch', 0o644);
  await writeFileWithMode(releasesDir(into), 'NOTES', 'not made by install', 0o644);
  const second = await installRelease({ source, into, policy });
  t.deepEqual((await readdir(releasesDir(into))).sort(), ['NOTES', basename(first.release), placed].sort());
  t.is(second.release, join(releasesDir(into), placed));
  await verifyInstalled(into);
});

test('install: a releases directory, lock file, lock or plugins link another user planted beside the plugins path is refused before anything there is read or removed', async (t) => {
  if (!runningAsRoot) {
    t.log('skipped: acting as another user needs root');
    t.pass();
    return;
  }
  // Another installation, whose releases the planted links point at.
  const { keys, into: victim, policy } = await setup(t);
  await installRelease({ source: await release(t, keys.secretKey, 1), into: victim, policy });
  await installRelease({ source: await release(t, keys.secretKey, 2), into: victim, policy });
  const victimReleases = (await readdir(releasesDir(victim))).sort();
  const forged = JSON.stringify({ schema: 'gatehouse.lock/v1', current: { dir: 'v99-aaaaaaaaaaaa', manifestVersion: 99, manifestSha256: 'a'.repeat(64), plugins: [] } });
  const source = await release(t, keys.secretKey, 3);
  const plants: Record<string, [script: string, arg: string]> = {
    // Attack: the releases directory is a link to another installation's: pruning through it deletes that one's releases.
    releases: ['ln -s "$1" "$2/.plugins.releases"', releasesDir(victim)],
    // Attack: a lock file of theirs says what is installed (version 99: every install is a "rollback") and what pruning keeps.
    lockFile: ['printf %s "$1" > "$2/plugins.lock.json"', forged],
    // Attack: a stale lock of theirs: install would take it over, reading and removing a file another user controls.
    lock: ['printf "%s\\n" "$1" > "$2/plugins.lck"', '4194305 1'],
    // Attack: the plugins link itself, read for what pruning keeps and pointing hosts wherever they like.
    link: ['ln -s "$1" "$2/plugins"', join(releasesDir(victim), victimReleases[0] ?? '')],
  };
  for (const [name, [script, arg]] of Object.entries(plants)) {
    const dir = await stickyDir(t);
    await asNobody(script, arg, dir);
    const before = await snapshot(dir);
    const into = join(dir, 'plugins');
    await t.throwsAsync(installRelease({ source, into, policy }), { code: 'FILE_BAD_OWNER', message: /owned by uid 65534.*remove it/ }, name);
    if (name === 'lockFile' || name === 'lock') await t.throwsAsync(rollbackRelease({ into, policy }), { code: 'FILE_BAD_OWNER' }, name);
    t.deepEqual(await snapshot(dir), before, `${name}: nothing made, read away or removed beside the plugins path`);
    t.deepEqual((await readdir(releasesDir(victim))).sort(), victimReleases, `${name}: the other installation keeps its releases`);
    await verifyInstalled(victim);
  }
  // Nothing planted: a plugins path in a sticky directory such as /tmp installs as before.
  const dir = await stickyDir(t);
  t.like((await installRelease({ source, into: join(dir, 'plugins'), policy })).lock, { current: { manifestVersion: 3 } });
  await verifyInstalled(join(dir, 'plugins'));
});

test('install: a plugins path in a directory others can write (not sticky), or a releases directory others can write, sticky or not, is refused before anything is made, read or pruned there', async (t) => {
  const { keys, policy } = await setup(t);
  const source = await release(t, keys.secretKey, 2);
  const open = await tempDir(t);
  await chmod(open, 0o777);
  for (const into of [join(open, 'plugins'), join(open, 'missing', 'plugins')]) {
    await t.throwsAsync(installRelease({ source, into, policy }), { code: 'DIRECTORY_WRITABLE_BY_OTHERS', message: /writable by group or others.*only this user/ }, into);
    t.deepEqual(await readdir(open), [], `${into}: no lock, releases directory or parent made where others can swap them`);
  }
  for (const mode of [0o777, 0o1777]) {
    const { into } = await setup(t);
    await installRelease({ source: await release(t, keys.secretKey, 1), into, policy });
    await chmod(releasesDir(into), mode);
    await writeFileWithMode(releasesDir(into), '.staging-Ab12Cd/plugin', 'a leftover, or what another user put there\n', 0o644);
    const before = { ...(await installedState(into)), inside: await snapshot(releasesDir(into)) };
    await t.throwsAsync(installRelease({ source, into, policy }), { code: 'DIRECTORY_WRITABLE_BY_OTHERS', message: /writable by group or others/ }, mode.toString(8));
    t.deepEqual({ ...(await installedState(into)), inside: await snapshot(releasesDir(into)) }, before, 'nothing pruned, placed or switched');
  }
});

test('install: a leftover in the releases directory that another user owns is refused, not removed: install prunes only what is its own', async (t) => {
  if (!runningAsRoot) {
    t.log('skipped: acting as another user needs root');
    t.pass();
    return;
  }
  const { keys, into, policy } = await setup(t);
  await installRelease({ source: await release(t, keys.secretKey, 1), into, policy });
  const leftover = await writeFileWithMode(releasesDir(into), '.staging-Ab12Cd/plugin', '#!/bin/sh\necho theirs\n', 0o755);
  await run('/bin/chown', ['-R', `${NOBODY}:${NOBODY}`, join(releasesDir(into), '.staging-Ab12Cd')]);
  await t.throwsAsync(installRelease({ source: await release(t, keys.secretKey, 2), into, policy }), { code: 'FILE_BAD_OWNER', message: /\.staging-Ab12Cd: owned by uid 65534/ });
  t.is(await readFile(leftover, 'utf8'), '#!/bin/sh\necho theirs\n');
});
