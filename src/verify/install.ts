import { chmod, lstat, mkdtemp, readdir, readlink, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { checkOwnedFile, effectiveUid } from '../discover/file-safety.js';
import { fsError, onFile, onFileIfAny } from '../discover/fs-error.js';
import { GatehouseError } from '../errors.js';
import { readArchive, type ArchiveFile } from './archive.js';
import { makeDirectories, type PreparedFile } from './atomic-file.js';
import { checkedDirectory, resolveExisting } from './checked-path.js';
import { explain, explained, withInstallLock } from './install-lock.js';
import { verifyPlugins } from './installed-plugins.js';
import { verifyManifestFile } from './manifest-files.js';
import { MAX_MANIFEST_BYTES, parseManifest, type Manifest } from './manifest.js';
import { listPackageTree } from './package-tree.js';
import { LOCK_SCHEMA, lockedPlugins, prepareLockFile, readLockFile, type LockedRelease, type LockFile } from './lock-file.js';
import type { ManifestPolicy, VerifiedManifest } from './signature-policy.js';
import { readLimited } from '../discover/untrusted-file.js';

export const RELEASE_MANIFEST = 'manifest.json';
const MAX_SOURCE_BYTES = 256 * 1024 * 1024;

export interface InstallOptions {
  /** A release directory or `.tar.gz` (gatehouse release): manifest.json, its signatures, the files. */
  source: string;
  /** The plugin directory hosts use: a symbolic link, switched in one rename, to the installed release. */
  into: string;
  policy: ManifestPolicy;
  /** Default: `INTO.lock.json`. */
  lockPath?: string;
}

export interface InstallResult {
  /** The release directory now behind `into`. */
  release: string;
  lock: LockFile;
}

/** Where `into`'s releases live: a sibling directory, so that `into` itself can be one atomic link. */
export function releasesDir(into: string): string {
  return join(dirname(resolve(into)), `.${basename(resolve(into))}.releases`);
}

export const defaultLockPath = (into: string): string => `${resolve(into)}.lock.json`;

/**
 * Installs a signed release: unpacks it (strictly, for an archive) into a new directory, verifies the
 * signatures, threshold and expiry, refuses a manifest older than the installed one or than `state`
 * (rollback), checks every file against the manifest and that nothing unlisted came with it, and only then
 * switches `into` to it with one rename. The previous release is kept for {@link rollbackRelease}. On any
 * failure nothing changes: the new directory is removed and `into`, the lock file and the state are as before.
 */
export function installRelease(options: InstallOptions): Promise<InstallResult> {
  // Two installs at once would each check rollback against the lock file as it was, and each prune the other's release.
  return withInstallLock(options.into, () => installLocked(options));
}

async function installLocked(options: InstallOptions): Promise<InstallResult> {
  const uid = effectiveUid();
  const lockPath = options.lockPath ?? defaultLockPath(options.into);
  const lock = await readExistingLock(lockPath, uid);
  // Refused before anything is unpacked: a release placed and then not switched in would block the next try.
  await checkSwitchable(options.into, uid);
  const root = await checkedReleases(options.into, uid, 0o755);
  // Leftovers of killed installs: unverified files, and a release placed but not switched in, which would block
  // the same release. What the link points at stays, even if a kill kept the lock file from recording it.
  const linked = await onFileIfAny(options.into, readlink(options.into));
  await pruneReleases(root, new Set([lock?.current.dir, lock?.previous?.dir, linked && basename(linked)]), uid);
  const staging = await onFile(root, mkdtemp(join(root, '.staging-')));
  let placed: string | undefined;
  try {
    await extract(await sourceFiles(options.source), staging);
    const { state, ...policy } = options.policy;
    // The state is raised only once the release is in place, so a failed install leaves it as it was.
    const verified = await verifyManifestFile(join(staging, RELEASE_MANIFEST), policy);
    await refuseRollback(verified, lock?.current, await state?.highestVersion());
    await checkRelease(verified.manifest, staging);
    // mkdtemp made it 0700: a host running as another user than the installer could not read its plugins.
    await onFile(staging, chmod(staging, 0o755));
    const dir = `v${verified.manifest.version}-${verified.sha256.slice(0, 12)}`;
    await onFile(join(root, dir), rename(staging, join(root, dir)));
    placed = join(root, dir);
    const current: LockedRelease = { dir, manifestVersion: verified.manifest.version, manifestSha256: verified.sha256, plugins: lockedPlugins(verified.manifest) };
    const next: LockFile = { schema: LOCK_SCHEMA, current, ...(lock ? { previous: lock.current } : {}) };
    await switchRecorded(options.into, placed, lockPath, lock, next, () => state?.accept(verified.manifest.version));
    placed = undefined;
    // The install is done: releases it could not prune now go at the next one.
    await pruneReleases(root, new Set([next.current.dir, next.previous?.dir]), uid).catch(() => undefined);
    return { release: join(root, dir), lock: next };
  } catch (error) {
    // Why the install failed matters more than a directory that could not be removed.
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    // Placed but not switched in (or switched back): nothing points at it, and left there it would block the same release.
    if (placed !== undefined && (await readlink(options.into).catch(() => undefined)) !== placed) await rm(placed, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
}

/**
 * Switches `into` back to the previous release, only if the policy still accepts its manifest (signatures,
 * threshold, expiry, and `state`: a host that remembers a higher version refuses, as for any rollback) and
 * its files are intact. The releases swap places, so a second rollback returns to the newer one.
 */
export function rollbackRelease(options: Omit<InstallOptions, 'source'>): Promise<InstallResult> {
  // An install running meanwhile would have the lock file and the link changed under it, or undo this.
  return withInstallLock(options.into, () => rollbackLocked(options));
}

async function rollbackLocked(options: Omit<InstallOptions, 'source'>): Promise<InstallResult> {
  const uid = effectiveUid();
  const lockPath = options.lockPath ?? defaultLockPath(options.into);
  const lock = await readCheckedLock(lockPath, uid);
  if (lock.previous === undefined) throw new GatehouseError('INVALID_OPTIONS', `${options.into}: no previous release to roll back to`);
  await checkSwitchable(options.into, uid);
  const dir = join(await checkedReleases(options.into, uid), lock.previous.dir);
  const verified = await verifyManifestFile(join(dir, RELEASE_MANIFEST), options.policy);
  if (verified.sha256 !== lock.previous.manifestSha256) throw new GatehouseError('LOCK_MISMATCH', `${dir}: its manifest is not the one the lock file recorded`);
  await checkRelease(verified.manifest, dir);
  const next: LockFile = { schema: LOCK_SCHEMA, current: lock.previous, previous: lock.current };
  await switchRecorded(options.into, dir, lockPath, lock, next);
  return { release: dir, lock: next };
}

/**
 * The releases directory of `into`, made with `mode` if missing and given, checked before anything in it is
 * read or removed. Returned as named (not resolved), as the lock file and the link name releases in it.
 */
async function checkedReleases(into: string, uid: number, mode?: number): Promise<string> {
  const root = releasesDir(into);
  // Not even sticky: pruning removes whole trees in it, and in a tree another user can write they swap a directory for a link while rm walks it.
  await explained(uid, checkedDirectory(root, { uid, stickyAllowed: () => true, stickyHere: false, ...(mode === undefined ? {} : { mode }) }));
  return root;
}

/** The lock file, once the way to it and the file itself passed the checks. */
async function readCheckedLock(path: string, uid: number): Promise<LockFile> {
  // It says what is installed (so what is a rollback) and what pruning keeps: another user's, or one they can write, chooses both.
  await explained(uid, resolveExisting(path, uid, () => true));
  // Checked on the open file: one planted once the way was checked is refused too.
  return explained(uid, readLockFile(path, (stats) => checkOwnedFile(path, stats, uid)));
}

async function readExistingLock(path: string, uid: number): Promise<LockFile | undefined> {
  try {
    return await readCheckedLock(path, uid);
  } catch (error) {
    // Only a lock that is not there means "nothing installed": an unreadable one must not skip the checks.
    if (error instanceof GatehouseError && error.code === 'FILE_NOT_FOUND') return undefined;
    throw error;
  }
}

async function sourceFiles(source: string): Promise<ArchiveFile[]> {
  let info;
  try {
    info = await stat(source);
  } catch (error) {
    throw fsError(error, source);
  }
  if (!info.isDirectory()) return readArchive(await readLimited(source, MAX_SOURCE_BYTES, 'ARCHIVE_TOO_LARGE'));
  const base = basename(resolve(source));
  const paths = await listPackageTree(dirname(resolve(source)), base);
  const files: ArchiveFile[] = [];
  let total = 0;
  for (const path of paths) {
    const file = join(dirname(resolve(source)), path);
    const data = await readLimited(file, MAX_SOURCE_BYTES - total, 'ARCHIVE_TOO_LARGE');
    // The same cap as for an archive: a directory of huge files must not fill memory either.
    total += data.length;
    files.push({ path: path.slice(base.length + 1), data, executable: ((await onFile(file, stat(file))).mode & 0o100) !== 0 });
  }
  return files;
}

async function extract(files: readonly ArchiveFile[], dir: string): Promise<void> {
  for (const file of files) {
    const target = join(dir, file.path);
    await onFile(dirname(target), makeDirectories(dirname(target), 0o755));
    // 'wx': a name the archive already created (as a directory, say) is an error, never written through.
    // Only these two modes, whatever the archive said: no setuid/setgid bit, no file writable by others.
    const mode = file.executable ? 0o755 : 0o644;
    await onFile(target, writeFile(target, file.data, { flag: 'wx', mode }));
    // Exactly: writeFile takes the umask off (077 would hide the plugin from a host running as another user).
    // By path: the staging directory is our private 0700 one, where nobody else can swap the name.
    await onFile(target, chmod(target, mode));
  }
}

async function refuseRollback(verified: VerifiedManifest, installed: LockedRelease | undefined, highest: number | undefined): Promise<void> {
  const version = verified.manifest.version;
  // An older signed release would bring back plugins a newer one withdrew.
  if (highest !== undefined && version < highest) throw new GatehouseError('MANIFEST_ROLLBACK', `manifest version ${version} is older than version ${highest}, already accepted`);
  if (installed === undefined) return;
  if (version < installed.manifestVersion) {
    throw new GatehouseError('MANIFEST_ROLLBACK', `manifest version ${version} is older than the installed version ${installed.manifestVersion}; use --rollback to return to the previous release`);
  }
  if (version === installed.manifestVersion) {
    throw new GatehouseError('MANIFEST_ROLLBACK', `manifest version ${version} is already installed${installed.manifestSha256 === verified.sha256 ? '' : ' with different content; sign changes under a higher version'}`);
  }
}

/** Every plugin passes the file checks, and the release holds nothing but the manifest, its signatures and listed files. */
async function checkRelease(manifest: Manifest, dir: string): Promise<void> {
  const failed = (await verifyPlugins(manifest, dir)).find((result) => !result.ok);
  if (failed && !failed.ok) throw failed.error;
  const listed = new Set(manifest.plugins.flatMap((plugin) => [plugin.path, ...(plugin.files ?? []).map((file) => file.path), ...(plugin.interpreter && !plugin.interpreter.path.startsWith('/') ? [plugin.interpreter.path] : [])]));
  for (const path of await listPackageTree(dirname(dir), basename(dir))) {
    const name = path.slice(basename(dir).length + 1);
    const signature = name.startsWith(`${RELEASE_MANIFEST}.`) && name.endsWith('.minisig') && !name.includes('/');
    // An unlisted file in a release is unsigned code waiting for a glob or a loader to find it.
    if (name !== RELEASE_MANIFEST && !signature && !listed.has(name)) {
      throw new GatehouseError('ARCHIVE_INVALID', `release: ${name} is not listed in the manifest`, { details: { file: name } });
    }
  }
}

/** `into` must be absent or a link: a real directory there was not made by install, and replacing it would drop someone's files. */
async function checkSwitchable(into: string, uid = effectiveUid()): Promise<void> {
  const path = resolve(into);
  const existing = await onFileIfAny(path, lstat(path));
  if (existing !== undefined && !existing.isSymbolicLink()) throw new GatehouseError('INVALID_OPTIONS', `${path} exists and is not a link made by gatehouse install`);
  // Another user's link at the plugins path: they chose where hosts look, and which release pruning keeps.
  if (existing !== undefined && existing.uid !== uid && existing.uid !== 0) {
    throw explain(new GatehouseError('FILE_BAD_OWNER', `${path}: symbolic link owned by uid ${existing.uid}, not by uid ${uid} or root`), uid);
  }
}

/** Points `into` at `target` in one rename of a fresh link over it: hosts see the old release or the new, never neither. */
async function switchTo(into: string, target: string): Promise<void> {
  const path = resolve(into);
  await checkSwitchable(path);
  // A random name: nobody can create the temporary link's name first and have our rename carry theirs.
  const temporary = `${path}.${randomBytes(8).toString('hex')}.tmp`;
  await onFile(temporary, symlink(target, temporary));
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw fsError(error, path);
  }
}

/**
 * Switches `into` to `target`, records `next` in the lock file and runs `after` (raising the state); if
 * any of it fails, `into` and the lock file are put back as they were (`before`, or none). What can fail
 * for want of space or permission, the lock file's new content and its old one for putting back, is
 * written before the switch: the undo is two renames.
 */
async function switchRecorded(into: string, target: string, lockPath: string, before: LockFile | undefined, next: LockFile, after?: () => Promise<void> | void): Promise<void> {
  const record = await prepareLockFile(lockPath, next);
  let restore: PreparedFile | undefined;
  try {
    restore = before && (await prepareLockFile(lockPath, before));
    const previous = await onFileIfAny(into, readlink(into));
    await switchTo(into, target);
    try {
      await record.commit();
      await after?.();
    } catch (error) {
      await putBack(into, previous, lockPath, restore).catch((undo: unknown) => {
        throw new GatehouseError('FILE_UNWRITABLE', `${into}: the install failed after the switch to ${target} (${message(error)}) and could not be undone (${message(undo)}); check it with gatehouse verify --lock, then install again`, { cause: error });
      });
      throw error;
    }
  } finally {
    await record.discard();
    await restore?.discard();
  }
}

/** Undoes a switch: `into` back to `previous` (or gone, as it was), then the lock file back to `restore` (or gone). */
async function putBack(into: string, previous: string | undefined, lockPath: string, restore: PreparedFile | undefined): Promise<void> {
  await (previous === undefined ? onFile(into, rm(into, { force: true })) : switchTo(into, previous));
  await (restore === undefined ? onFile(lockPath, rm(lockPath, { force: true })) : restore.commit());
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** The names install makes in the releases directory: its releases, and mkdtemp's staging directories. */
const RELEASE_NAME = /^v[1-9][0-9]*-[0-9a-f]{12}$/;
const STAGING_NAME = /^\.staging-[A-Za-z0-9]{6}$/;

/**
 * Removes the releases not in `keep`, and staging directories (unverified files) left by interrupted
 * installs. Only run under the install lock: no staging directory is then another install's work.
 */
async function pruneReleases(root: string, keep: ReadonlySet<string | undefined>, uid: number): Promise<void> {
  for (const name of (await onFileIfAny(root, readdir(root))) ?? []) {
    // Only names install makes: anything else kept here is someone else's.
    if (!(STAGING_NAME.test(name) || (RELEASE_NAME.test(name) && !keep.has(name)))) continue;
    const path = join(root, name);
    const stats = await onFileIfAny(path, lstat(path));
    // Only trees of our own: in one another user owns or can write, they swap a directory for a link while rm walks it.
    if (stats !== undefined && !stats.isSymbolicLink()) {
      try {
        checkOwnedFile(path, stats, uid);
      } catch (error) {
        throw explain(error, uid);
      }
    }
    await onFile(path, rm(path, { recursive: true, force: true }));
  }
}

/**
 * Checks an installed plugin directory against its lock file (`gatehouse verify --lock`): `into` points at
 * the recorded release, its manifest has the recorded digest, each plugin the recorded name, version and
 * tree digest, and every file is intact with nothing unlisted beside it. Any difference is LOCK_MISMATCH
 * (or the file check's own code), naming it. The lock file and the way to it pass install's checks first.
 */
export async function verifyInstalled(into: string, lockPath = defaultLockPath(into)): Promise<LockFile> {
  // The lock file says which release is the right one: checked as install checks it (PK10), or another user chooses.
  const lock = await readCheckedLock(lockPath, effectiveUid());
  const expected = join(releasesDir(into), lock.current.dir);
  const actual = await onFile(into, realpath(into));
  if (actual !== (await realpath(expected).catch(() => expected))) throw new GatehouseError('LOCK_MISMATCH', `${into} points at ${actual}, the lock file says ${expected}`);
  const bytes = await readLimited(join(expected, RELEASE_MANIFEST), MAX_MANIFEST_BYTES, 'MANIFEST_TOO_LARGE');
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== lock.current.manifestSha256) throw new GatehouseError('LOCK_MISMATCH', `${expected}: manifest SHA-256 is ${sha256}, the lock file says ${lock.current.manifestSha256}`);
  const manifest = parseManifest(bytes);
  const found = JSON.stringify(lockedPlugins(manifest));
  if (found !== JSON.stringify(lock.current.plugins)) throw new GatehouseError('LOCK_MISMATCH', `${expected}: plugins, versions or trees differ from the lock file`);
  await checkRelease(manifest, expected);
  return lock;
}
