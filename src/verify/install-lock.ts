import { rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fsError, onFile, onFileIfAny } from '../discover/fs-error.js';
import { GatehouseError } from '../errors.js';
import { isSameProcess, processStartTime } from '../process-identity.js';
import { readLimited } from '../discover/untrusted-file.js';
import { createWhole, makeDirectories } from './atomic-file.js';

/** The file whose exclusive creation lets one install or rollback of `into` run at a time. */
export const installLockPath = (into: string): string => `${resolve(into)}.lck`;

/** A holder's pid and start time: enough to tell a running install from a killed one whose pid was reused. */
const HOLDER = /^([1-9][0-9]{0,9}) ([0-9]{1,20}|-)\n$/;
const TAKEOVER_ATTEMPTS = 3;

/**
 * Runs `work` holding the install lock of `into` (`INTO.lck`, created O_EXCL, holding our pid and start
 * time), from before it reads the lock file to after it prunes. A lock held by a running process is
 * INSTALL_LOCKED; one left by a process that is gone (a killed install) is taken over.
 */
export async function withInstallLock<T>(into: string, work: () => Promise<T>): Promise<T> {
  const path = installLockPath(into);
  // Made as install always made it, before the lock file that goes in it.
  await onFile(dirname(path), makeDirectories(dirname(path), 0o755));
  await acquire(path, into);
  try {
    return await work();
  } finally {
    // Left there, it names this process: once we exit, the next install sees it is stale and takes it over.
    await rm(path, { force: true }).catch(() => undefined);
  }
}

async function acquire(path: string, into: string): Promise<void> {
  const me = `${process.pid} ${(await processStartTime(process.pid)) ?? '-'}\n`;
  for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt += 1) {
    if (await create(path, me)) return;
    const holder = await onFileIfAny(path, readLimited(path, 64, 'INSTALL_LOCKED'));
    if (holder === undefined) continue;
    const text = holder.toString('latin1');
    const [, pid, start] = HOLDER.exec(text) ?? [];
    // Unparsable: a holder between creating the file and writing its pid, so running as far as we know.
    if (pid === undefined || (await isSameProcess(Number(pid), start === '-' ? undefined : start))) throw locked(path, into, pid);
    await takeOver(path, into, text, `${pid}-${start}`);
  }
  throw locked(path, into, undefined);
}

/** Creates the lock file holding `me`, or says false if it exists. */
async function create(path: string, me: string): Promise<boolean> {
  try {
    // Created new: exactly one creator wins, and a link planted at the name is not followed.
    await createWhole(path, me, 0o644);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fsError(error, path);
  }
}

/**
 * Removes a stale lock file, only if it still holds `stale`. Two installs seeing the same stale lock must
 * not both remove it, or the later would remove the lock the earlier then created and both would run:
 * the removal is done only by whoever creates `PATH.HOLDER.stale` (O_EXCL), named after the dead holder.
 */
async function takeOver(path: string, into: string, stale: string, holder: string): Promise<void> {
  const marker = `${path}.${holder}.stale`;
  if (!(await create(marker, `${process.pid}\n`))) throw locked(path, into, undefined, marker);
  try {
    // Under the marker, nobody else removes the stale lock: if it is still there, it is the one we judged.
    const now = await onFileIfAny(path, readLimited(path, 64, 'INSTALL_LOCKED'));
    if (now?.toString('latin1') === stale) await onFile(path, rm(path));
  } finally {
    await rm(marker, { force: true }).catch(() => undefined);
  }
}

function locked(path: string, into: string, pid: string | undefined, marker?: string): GatehouseError {
  const holder = pid === undefined ? '' : ` (pid ${pid})`;
  const remove = marker === undefined ? path : `${path} and ${marker}`;
  return new GatehouseError('INSTALL_LOCKED', `${into}: another install or rollback is running${holder}; wait for it to finish and try again, or if none is running, remove ${remove}`);
}
