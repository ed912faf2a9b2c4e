import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsError } from '../discover/fs-error.js';

/**
 * Replaces `file` with `data` so that a reader, or a crash, sees the old content or the new, never a mix:
 * write a temporary file beside it, fsync, rename over, fsync the directory. The file gets `mode`.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(file);
  const temporary = join(dir, `.${basename(file)}.${randomBytes(8).toString('hex')}.tmp`);
  try {
    // 'wx' (O_EXCL): a file or link planted under the temporary name is never written through.
    const handle = await open(temporary, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw fsError(error, file);
  }
  const directory = await open(dir, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
