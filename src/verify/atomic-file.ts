import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { GatehouseError } from '../errors.js';

/** A replacement for a file, written and fsynced beside it but not yet in its place. */
export interface PreparedFile {
  /** Renames it over the file and fsyncs the directory. */
  commit(): Promise<void>;
  /** Removes it if it was not committed (a no-op once it was). */
  discard(): Promise<void>;
}

/**
 * Replaces `file` with `data` so that a reader, or a crash, sees the old content or the new, never a mix:
 * write a temporary file beside it, fsync, rename over, fsync the directory. The file gets `mode`.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  await (await prepareFileAtomic(file, data, mode)).commit();
}

/**
 * The first half of {@link writeFileAtomic}: everything that can fail for want of space or permission
 * happens here, so that a caller can do it before a change it could not take back, and commit after.
 */
export async function prepareFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<PreparedFile> {
  const dir = dirname(file);
  const temporary = join(dir, `.${basename(file)}.${randomBytes(8).toString('hex')}.tmp`);
  // Under a missing directory or a file, removing the temporary fails too: report why the write failed.
  const discard = () => rm(temporary, { force: true }).then(() => undefined, () => undefined);
  try {
    // A new file: a file or link planted under the temporary name is never written through.
    await createWhole(temporary, data, mode);
  } catch (error) {
    throw writeError(error, file);
  }
  const commit = async () => {
    try {
      await rename(temporary, file);
    } catch (error) {
      await discard();
      throw writeError(error, file);
    }
    await syncDirectory(dir);
  };
  return { commit, discard };
}

/**
 * Creates `file` holding `data` with `mode`, fsynced, or leaves nothing: a write cut short (a full disk, a
 * file size limit) removes the torn file, which would otherwise pass for a key or a signature and make
 * every later writeNewFile refuse to replace it. `what` names the file in the refusal to overwrite one.
 */
export async function writeNewFile(file: string, data: string | Uint8Array, mode: number, what = 'it'): Promise<void> {
  try {
    await createWhole(file, data, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new GatehouseError('INVALID_OPTIONS', `${file} already exists; refusing to overwrite ${what}`, { cause: error });
    }
    throw writeError(error, file);
  }
  await syncDirectory(dirname(file));
}

/**
 * Creates `file` holding `data` with `mode`, fsynced; a failure after creating it removes it. 'wx' (O_EXCL):
 * an existing file is never overwritten, and a link planted at the name is never followed. Throws Node's error.
 */
export async function createWhole(file: string, data: string | Uint8Array, mode: number): Promise<void> {
  const handle = await open(file, 'wx', mode);
  try {
    try {
      // Exactly `mode`: open() takes the umask off, and under 077 a lock or release file a host running as
      // another user must read would be 0600.
      await handle.chmod(mode);
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    // O_EXCL made this name ours a moment ago: what is removed is the torn file, nobody else's.
    await rm(file, { force: true }).catch(() => undefined);
    throw error;
  }
}

/**
 * Makes `dir` and its missing parents, each one it creates with exactly `mode` (mkdir takes the umask off);
 * directories that were there are left as they are. Throws Node's error.
 */
export async function makeDirectories(dir: string, mode: number): Promise<void> {
  // Resolved first: the walk up from it to the first directory made must pass only through directories
  // made here (`..` in the path would lead it through one that was there) and must end.
  const target = resolve(dir);
  const first = await mkdir(target, { recursive: true, mode });
  if (first === undefined) return;
  for (let made = target; made !== dirname(made); made = dirname(made)) {
    // Through the directory itself: a link put in its place meanwhile is not followed, so its target keeps its mode.
    const handle = await open(made, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      await handle.chmod(mode);
    } finally {
      await handle.close();
    }
    if (made === first) return;
  }
}

/** Makes a new or renamed entry in `dir` survive a crash. */
async function syncDirectory(dir: string): Promise<void> {
  // O_DIRECTORY: anything else there (a FIFO would block the open, and Node's exit with it) is refused at once.
  const directory = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/** Why `file` could not be written, naming the directory when that is what is missing. */
function writeError(error: unknown, file: string): GatehouseError {
  if (error instanceof GatehouseError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const dir = dirname(file);
  if (code === 'ENOENT') {
    return new GatehouseError('FILE_NOT_FOUND', `${file}: cannot be written: there is no directory ${dir}; create it first`, { cause: error });
  }
  if (code === 'ENOTDIR') {
    return new GatehouseError('FILE_NOT_FOUND', `${file}: cannot be written: ${dir} is not a directory`, { cause: error });
  }
  return new GatehouseError('FILE_UNWRITABLE', `${file}: cannot be written (${code ?? String(error)})`, { cause: error });
}
