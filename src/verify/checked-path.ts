/**
 * Paths a command is about to create, read, prune or remove in (an install's plugins directory, releases
 * directory and lock files; a seal root), checked before it touches them with the file-safety chain check
 * (resolveChecked), and directories made one level at a time, each only in a directory that passed: a link
 * another user planted on the way is refused before anything is made, read or removed where it points.
 */
import { lstat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { checkDirectory, resolveChecked } from '../discover/file-safety.js';
import { onFile, onFileIfAny } from '../discover/fs-error.js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { makeDirectories } from './atomic-file.js';

/** Where a sticky directory others can write is acceptable (as for resolveChecked). */
export type StickyAllowed = (dir: string) => boolean;

/**
 * `path` with every link resolved, once every directory and link on the way passed resolveChecked's checks
 * (owned by `uid` or root, directories writable by nobody else unless sticky and `stickyAllowed`); undefined
 * when `path` is not there, once the last directory on its way that is there passed them too. `path`
 * itself, when there and not a link, is the caller's to check.
 */
export async function resolveExisting(path: string, uid: number, stickyAllowed: StickyAllowed): Promise<string | undefined> {
  const absolute = resolve(path);
  try {
    return await resolveChecked(absolute, uid, stickyAllowed);
  } catch (error) {
    if (!isGatehouseError(error, 'FILE_NOT_FOUND') || dirname(absolute) === absolute) throw error;
    const parent = await resolveExisting(dirname(absolute), uid, stickyAllowed);
    if (parent === undefined) return undefined;
    const stats = await onFile(parent, lstat(parent));
    if (!stats.isDirectory()) throw error;
    // The directory `path` would be made in: another user who can rename entries there can swap what we make.
    checkDirectory(parent, stats, uid, stickyAllowed(parent));
    // There, but not to be resolved (a link to nothing): not a missing entry we may make.
    if ((await onFileIfAny(absolute, lstat(join(parent, basename(absolute))))) !== undefined) throw error;
    return undefined;
  }
}

/** How {@link checkedDirectory} checks and makes a directory. */
export interface CheckedDirectoryOptions {
  /** The user whose directories may be trusted besides root's: the one doing the work. */
  uid: number;
  /** Where on the way a sticky directory others can write is acceptable (as for resolveChecked). */
  stickyAllowed: StickyAllowed;
  /** Whether the directory itself may be sticky and writable by others (default: as `stickyAllowed` says). */
  stickyHere?: boolean;
  /** Make it, and its missing parents, with exactly this mode if it is missing. */
  mode?: number;
}

/**
 * The real path of the directory `dir`, checked: it and every directory and link on the way owned by
 * `uid` or root, writable by nobody else unless sticky where that is allowed. With `mode`, a missing `dir`
 * and its missing parents are made first, one level at a time, each in a directory that passed.
 */
export async function checkedDirectory(dir: string, options: CheckedDirectoryOptions): Promise<string> {
  const { uid, stickyAllowed, mode } = options;
  const absolute = resolve(dir);
  let real = await resolveExisting(absolute, uid, stickyAllowed);
  if (real === undefined && mode !== undefined) {
    const parent = await checkedDirectory(dirname(absolute), { uid, stickyAllowed, mode });
    // One level, in a directory that passed: a link planted at the name meanwhile is not followed to make
    // anything beyond it, and is refused by the check that follows.
    await onFile(absolute, makeDirectories(join(parent, basename(absolute)), mode));
    real = await resolveExisting(absolute, uid, stickyAllowed);
  }
  if (real === undefined) throw new GatehouseError('FILE_NOT_FOUND', `${absolute}: no such directory`);
  const stats = await onFile(real, lstat(real));
  if (!stats.isDirectory()) throw new GatehouseError('FILE_NOT_FOUND', `${absolute}: not a directory`);
  // A directory another user owns or can write: they can rename entries in it, or plant what we would read or remove.
  checkDirectory(real, stats, uid, options.stickyHere ?? stickyAllowed(real));
  return real;
}
