import type { Stats } from 'node:fs';
import { lstat, readlink, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { GatehouseError } from '../errors.js';
import { fsError } from './fs-error.js';

export interface SafetyOptions {
  /** Require an execute bit the host's user can use (default true; false for key files). */
  executable?: boolean;
  /** The user the host runs as, whose files may be trusted besides root's (default: the effective uid). */
  uid?: number;
}

/** What the checks found out about a file that passed them. */
export interface SafeFile {
  /** The path as given. */
  path: string;
  /** The path with every symbolic link resolved; inside the root. */
  realPath: string;
  size: number;
  mode: number;
  uid: number;
}

const STICKY = 0o1000;
const GROUP_OR_OTHER_WRITE = 0o022;

/**
 * Checks that `file`, found under the plugin directory `root`, is one the host may trust: a regular
 * file inside `root`, owned by the host's user or root, writable by nobody else, executable, and with
 * no directory above it, up to `/`, that another user could use to swap it. Throws the first failure.
 */
export async function checkFileSafety(file: string, root: string, options: SafetyOptions = {}): Promise<SafeFile> {
  const uid = options.uid ?? effectiveUid();
  const realRoot = await realpathOf(root);
  // Every directory the path passes through as written, and every link it follows, is checked, not only
  // the resolved path: a link in a directory others can write could be flipped between this check and use.
  const realPath = await resolveChecked(file, uid, (dir) => !isInside(realRoot, dir));
  // A link out of the plugin directory would run a file whoever published the directory never vetted.
  if (!isInside(realRoot, realPath)) {
    throw new GatehouseError('FILE_SYMLINK_ESCAPES', `${file}: resolves to ${realPath}, outside ${realRoot}`);
  }
  const stats = await lstatOf(realPath);
  // A FIFO or device in place of a plugin would hang the reader or feed it endless bytes.
  if (!stats.isFile()) {
    throw new GatehouseError('FILE_NOT_REGULAR', `${file}: not a regular file`);
  }
  checkOwnedFile(file, stats, uid);
  if ((options.executable ?? true) && !isExecutableBy(stats, uid)) {
    throw new GatehouseError('FILE_NOT_EXECUTABLE', `${file}: not executable by uid ${uid} (mode ${octal(stats.mode)})`);
  }
  return { path: file, realPath, size: stats.size, mode: stats.mode, uid: stats.uid };
}

/** Refuses a file (`stats` from lstat or fstat) that another user owns or can write. */
export function checkOwnedFile(file: string, stats: Stats, uid: number): void {
  // Another user who owns the file can rewrite it at any time.
  if (stats.uid !== uid && stats.uid !== 0) {
    throw new GatehouseError('FILE_BAD_OWNER', `${file}: owned by uid ${stats.uid}, not by uid ${uid} or root`);
  }
  // Group or world write access lets another user rewrite the file.
  if ((stats.mode & GROUP_OR_OTHER_WRITE) !== 0) {
    throw new GatehouseError('FILE_WRITABLE_BY_OTHERS', `${file}: writable by group or others (mode ${octal(stats.mode)})`);
  }
}

const MAX_LINKS = 40;

/**
 * Resolves `path` component by component as the kernel would, and checks on the way every directory it
 * passes through (ssh's StrictModes: owned by `uid` or root, writable by nobody else; `stickyAllowed`
 * says where a sticky world-writable one is acceptable) and every symbolic link it follows (owned by `uid` or root, inside a checked directory).
 * Returns the path with every link resolved. The last component is not checked: that is the caller's.
 */
export async function resolveChecked(path: string, uid: number, stickyAllowed: (dir: string) => boolean): Promise<string> {
  // Not path.resolve: it would fold `link/..` lexically, where the kernel goes to the parent of the link's target.
  const pending = componentsOf(isAbsolute(path) ? path : `${process.cwd()}/${path}`).reverse();
  let current = '/';
  checkDirectory(current, await lstatOf(current), uid, stickyAllowed(current));
  let links = 0;
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (name === '..') {
      // `current` holds no links, so its parent is the one the kernel would use.
      current = dirname(current);
      continue;
    }
    const next = join(current, name);
    const stats = await lstatOf(next);
    if (stats.isSymbolicLink()) {
      // Another user's link in a sticky directory is theirs to re-point at any time (protected_symlinks may be off).
      if (stats.uid !== uid && stats.uid !== 0) {
        throw new GatehouseError('FILE_BAD_OWNER', `${next}: symbolic link owned by uid ${stats.uid}, not by uid ${uid} or root`);
      }
      if (++links > MAX_LINKS) throw new GatehouseError('FILE_NOT_REGULAR', `${path}: more than ${MAX_LINKS} symbolic links`);
      const target = await readlinkOf(next);
      pending.push(...componentsOf(target).reverse());
      if (isAbsolute(target)) current = '/';
      continue;
    }
    if (pending.length > 0) {
      if (!stats.isDirectory()) throw new GatehouseError('FILE_NOT_FOUND', `${path}: ${next} is not a directory`);
      checkDirectory(next, stats, uid, stickyAllowed(next));
    }
    current = next;
  }
  return current;
}

/** Refuses a directory (`stats` from lstat) another user owns, or can write unless it is sticky and `stickyAllowed`. */
export function checkDirectory(dir: string, stats: Stats, uid: number, stickyAllowed: boolean): void {
  // Whoever owns a directory can rename another file over the plugin, or chmod the directory and then do so.
  if (stats.uid !== uid && stats.uid !== 0) {
    throw new GatehouseError('DIRECTORY_WRITABLE_BY_OTHERS', `${dir}: owned by uid ${stats.uid}, not by uid ${uid} or root`);
  }
  // A sticky directory lets others add entries but not rename or remove ours; where that is not enough, it is refused.
  const sticky = (stats.mode & STICKY) !== 0 && stickyAllowed;
  // Write access to a directory is enough to rename another file over the plugin.
  if ((stats.mode & GROUP_OR_OTHER_WRITE) !== 0 && !sticky) {
    throw new GatehouseError('DIRECTORY_WRITABLE_BY_OTHERS', `${dir}: writable by group or others (mode ${octal(stats.mode)})`);
  }
}

function componentsOf(path: string): string[] {
  return path.split('/').filter((name) => name !== '' && name !== '.');
}

/** The effective uid, which decides what the host may trust; file-ownership checks mean nothing without one. */
export function effectiveUid(): number {
  if (typeof process.geteuid !== 'function') {
    throw new GatehouseError('INVALID_OPTIONS', 'file-safety checks need a POSIX system with user ids');
  }
  return process.geteuid();
}

/** True when `child` is `parent` or below it; both absolute and free of symbolic links. */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`));
}

function isExecutableBy(stats: Stats, uid: number): boolean {
  if (uid === 0) return (stats.mode & 0o111) !== 0;
  if (stats.uid === uid) return (stats.mode & 0o100) !== 0;
  const groups = [process.getegid?.(), ...(process.getgroups?.() ?? [])];
  if (groups.includes(stats.gid)) return (stats.mode & 0o010) !== 0;
  return (stats.mode & 0o001) !== 0;
}

async function realpathOf(file: string): Promise<string> {
  try {
    return await realpath(file);
  } catch (error) {
    throw fsError(error, file);
  }
}

async function readlinkOf(file: string): Promise<string> {
  try {
    return await readlink(file);
  } catch (error) {
    throw fsError(error, file);
  }
}

async function lstatOf(file: string): Promise<Stats> {
  try {
    return await lstat(file);
  } catch (error) {
    throw fsError(error, file);
  }
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}
