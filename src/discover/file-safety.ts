import type { Stats } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, relative, sep } from 'node:path';
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
  const realPath = await realpathOf(file);
  // A link out of the plugin directory would run a file whoever published the directory never vetted.
  if (!isInside(realRoot, realPath)) {
    throw new GatehouseError('FILE_SYMLINK_ESCAPES', `${file}: resolves to ${realPath}, outside ${realRoot}`);
  }
  const stats = await lstatOf(realPath);
  // A FIFO or device in place of a plugin would hang the reader or feed it endless bytes.
  if (!stats.isFile()) {
    throw new GatehouseError('FILE_NOT_REGULAR', `${file}: not a regular file`);
  }
  // Another user who owns the file can rewrite it at any time.
  if (stats.uid !== uid && stats.uid !== 0) {
    throw new GatehouseError('FILE_BAD_OWNER', `${file}: owned by uid ${stats.uid}, not by uid ${uid} or root`);
  }
  // Group or world write access lets another user rewrite the file.
  if ((stats.mode & GROUP_OR_OTHER_WRITE) !== 0) {
    throw new GatehouseError('FILE_WRITABLE_BY_OTHERS', `${file}: writable by group or others (mode ${octal(stats.mode)})`);
  }
  if ((options.executable ?? true) && !isExecutableBy(stats, uid)) {
    throw new GatehouseError('FILE_NOT_EXECUTABLE', `${file}: not executable by uid ${uid} (mode ${octal(stats.mode)})`);
  }
  await checkDirectoryChain(dirname(realPath), realRoot, uid);
  return { path: file, realPath, size: stats.size, mode: stats.mode, uid: stats.uid };
}

/**
 * ssh's StrictModes rule for every directory from `dir` up to `/`: owned by `uid` or root and writable
 * by nobody else. Directories above `realRoot` may be world-writable if sticky (like /tmp).
 */
export async function checkDirectoryChain(dir: string, realRoot: string, uid: number): Promise<void> {
  for (let current = dir; ; current = dirname(current)) {
    const stats = await lstatOf(current);
    // Whoever owns a directory can rename another file over the plugin, or chmod the directory and then do so.
    if (stats.uid !== uid && stats.uid !== 0) {
      throw new GatehouseError('DIRECTORY_WRITABLE_BY_OTHERS', `${current}: owned by uid ${stats.uid}, not by uid ${uid} or root`);
    }
    // A sticky directory lets others add entries but not rename or remove ours; inside the plugin tree even that is refused.
    const stickyAboveRoot = (stats.mode & STICKY) !== 0 && !isInside(realRoot, current);
    // Write access to a directory is enough to rename another file over the plugin.
    if ((stats.mode & GROUP_OR_OTHER_WRITE) !== 0 && !stickyAboveRoot) {
      throw new GatehouseError('DIRECTORY_WRITABLE_BY_OTHERS', `${current}: writable by group or others (mode ${octal(stats.mode)})`);
    }
    if (dirname(current) === current) return;
  }
}

/** The effective uid, which decides what the host may trust; file-ownership checks mean nothing without one. */
function effectiveUid(): number {
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
