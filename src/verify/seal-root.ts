/**
 * The seal root: the directory under which each sealed copy gets its private directory. A sealed plugin
 * resolves things by walking up from its own path (Node's node_modules and package.json, Python's
 * lib/pythonX.Y prefix), and whoever can rename entries in a directory above it can swap the whole copy;
 * so the root must be the host's, and no directory from it up to `/` may let another user add or rename
 * entries — not even a sticky one such as /tmp, where anyone can still create node_modules.
 */
import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { effectiveUid } from '../discover/file-safety.js';
import { fsError } from '../discover/fs-error.js';
import { GatehouseError } from '../errors.js';
import { checkedDirectory } from './checked-path.js';

export interface SealRootOptions {
  /** The seal root to use instead of the default (`seal.parentDir`, `gatehouse call --seal-dir`). */
  parentDir?: string | undefined;
  /** A group that must be able to reach copies under the root (a plugin run as another user and group). */
  group?: number | undefined;
}

/** Where the option is set, for error messages that say what to do. */
const OPTION = 'seal.parentDir (gatehouse call --seal-dir)';

/**
 * The default seal root for the effective user: root's /var/cache/gatehouse/seal (a persistent, exec-able
 * file system; 0711, so a plugin run as another user can reach its own copy by name but list nothing);
 * for anyone else $XDG_RUNTIME_DIR/gatehouse/seal (a private per-user tmpfs) or else
 * ~/.cache/gatehouse/seal (0700).
 */
export function defaultSealRoot(uid = effectiveUid()): string {
  if (uid === 0) return '/var/cache/gatehouse/seal';
  const runtime = process.env['XDG_RUNTIME_DIR'];
  if (runtime !== undefined && isAbsolute(runtime)) return join(runtime, 'gatehouse', 'seal');
  return join(homedir(), '.cache', 'gatehouse', 'seal');
}

/**
 * Makes the seal root if it is missing, checks it, and returns its real path (where the private
 * directories then go). Refuses with SEAL_ROOT_UNSAFE, naming the directory at fault and the option to set,
 * when the root is not the host's own directory, when any directory from it up to `/` (symbolic links
 * followed and checked on the way) is writable by another user, sticky or not, or when `group` is given
 * and cannot search every directory down to the root.
 */
export async function prepareSealRoot(options: SealRootOptions = {}): Promise<string> {
  const uid = effectiveUid();
  const root = options.parentDir ?? defaultSealRoot(uid);
  if (!isAbsolute(root)) throw new GatehouseError('INVALID_OPTIONS', `the seal root ${root} must be an absolute path (${OPTION})`);
  try {
    // 0711 for root: a run-as plugin must pass through to its copy; a user's root is for that user alone.
    // Exactly that mode, whatever the umask (077 would make root's 0700 and shut the run-as plugins out).
    // Checked before anything is made: a link another user planted on the way would have us make the root wherever it points.
    // No sticky exception anywhere: in a sticky directory another user can still plant node_modules or lib/python3.
    // Its real path, a directory, checked up to `/` (the same walk as resolveChecked's): walked once, not twice per seal.
    const real = await checkedDirectory(root, { uid, stickyAllowed: () => false, mode: uid === 0 ? 0o711 : 0o700 });
    const stats = await lstat(real);
    // Only the host's own root: whoever owns it can rename our private directories inside it.
    if (stats.uid !== uid) throw new GatehouseError('SEAL_ROOT_UNSAFE', `${real}: owned by uid ${stats.uid}, not by the host (uid ${uid})`);
    if ((stats.mode & 0o022) !== 0) throw new GatehouseError('SEAL_ROOT_UNSAFE', `${real}: writable by group or others (mode ${octal(stats)})`);
    if (options.group !== undefined) await checkSearchable(real, options.group);
    return real;
  } catch (error) {
    const cause = error instanceof GatehouseError ? error : fsError(error, root);
    throw new GatehouseError(
      'SEAL_ROOT_UNSAFE',
      `cannot seal plugins under ${root}: ${cause.message}; set ${OPTION} to a directory that only this user (uid ${uid}) ` +
        `or root can write, with no directory above it writable by anyone else`,
      { cause },
    );
  }
}

/** A plugin run with `group` (and another uid) must be able to search every directory down to its copy. */
async function checkSearchable(real: string, group: number): Promise<void> {
  for (let dir = real; ; dir = dirname(dir)) {
    const stats = await lstat(dir);
    if ((stats.mode & 0o001) === 0 && !(stats.gid === group && (stats.mode & 0o010) !== 0)) {
      throw new GatehouseError('SEAL_ROOT_UNSAFE', `${dir}: not searchable by group ${group} (mode ${octal(stats)}), so a plugin run as another user cannot reach its sealed copy`);
    }
    if (dirname(dir) === dir) return;
  }
}

function octal(stats: Stats): string {
  return (stats.mode & 0o7777).toString(8).padStart(4, '0');
}
