import { rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { checkOwnedFile, effectiveUid } from '../discover/file-safety.js';
import { fsError, onFile, onFileIfAny } from '../discover/fs-error.js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { holderHolds, holdLease, LEASE_REFRESH_MS, PID_SCOPE_PATTERN, selfIdentity } from '../process-identity.js';
import { readLimited } from '../discover/untrusted-file.js';
import { createWhole } from './atomic-file.js';
import { checkedDirectory } from './checked-path.js';

/** The file whose exclusive creation lets one install or rollback of `into` run at a time. */
export const installLockPath = (into: string): string => `${resolve(into)}.lck`;

/**
 * A holder's pid, start time and the pid's scope (PID namespace and boot): enough to tell a running install from a
 * killed one whose pid was reused, and to know when the pid cannot be judged from here. Locks of older versions name
 * no scope: judged as ours.
 */
const HOLDER = new RegExp(`^([1-9][0-9]{0,9}) ([0-9]{1,20}|-)(?: (${PID_SCOPE_PATTERN}))?\n$`);
const TAKEOVER_ATTEMPTS = 3;

/**
 * Runs `work` holding the install lock of `into` (`INTO.lck`, created O_EXCL, holding our pid and start
 * time), from before it reads the lock file to after it prunes. A lock held by a running process is
 * INSTALL_LOCKED; one left by a process that is gone (a killed install) is taken over.
 */
export async function withInstallLock<T>(into: string, work: () => Promise<T>): Promise<T> {
  const path = installLockPath(into);
  const uid = effectiveUid();
  // Checked (and made as install always made it) before the lock goes in it: through another user's link, or in a
  // directory they can write (not sticky), they would choose what install reads, makes and removes beside PLUGINS_DIR.
  await explained(uid, checkedDirectory(dirname(path), { uid, stickyAllowed: () => true, mode: 0o755 }));
  await acquire(path, into, uid);
  // An install in another container or on another machine tells a live holder only by the lock's refreshes.
  const stopLease = holdLease(path);
  try {
    return await work();
  } finally {
    stopLease();
    // Left there, it names this process: once we exit, the next install sees it is stale and takes it over.
    await rm(path, { force: true }).catch(() => undefined);
  }
}

async function acquire(path: string, into: string, uid: number): Promise<void> {
  const { startTime, scope } = await selfIdentity();
  const me = `${process.pid} ${startTime ?? '-'}${scope === undefined ? '' : ` ${scope}`}\n`;
  for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt += 1) {
    if (await create(path, me)) return;
    const holder = await readHolder(path, uid);
    if (holder === undefined) continue;
    const text = holder.toString('latin1');
    const [, pid, start, holderScope] = HOLDER.exec(text) ?? [];
    // Unparsable: a holder between creating the file and writing its pid, so running as far as we know.
    if (pid === undefined) throw locked(path, into, pid);
    // A running install, here or (judged by its lease) in another container or on another machine, where its pid
    // names nobody: taking its lock over ran two installs of `into` at once.
    const { holds, leaseAgeMs } = await holderHolds({ pid: Number(pid), startTime: start === '-' ? undefined : start, scope: holderScope }, path);
    if (holds) {
      const elsewhere = leaseAgeMs === undefined ? '' : ` in another PID namespace or on another machine, its lock refreshed ${Math.max(0, Math.round(leaseAgeMs / 1000))} s ago, every ${LEASE_REFRESH_MS / 1000} s while it runs`;
      throw locked(path, into, `${pid}${elsewhere}`);
    }
    await takeOver(path, into, text, `${pid}-${start}`, uid);
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
async function takeOver(path: string, into: string, stale: string, holder: string, uid: number): Promise<void> {
  const marker = `${path}.${holder}.stale`;
  if (!(await create(marker, `${process.pid}\n`))) throw locked(path, into, undefined, marker);
  try {
    // Under the marker, nobody else removes the stale lock: if it is still there, it is the one we judged.
    const now = await readHolder(path, uid);
    if (now?.toString('latin1') === stale) await onFile(path, rm(path));
  } finally {
    await rm(marker, { force: true }).catch(() => undefined);
  }
}

/** The lock's content, or undefined if it is gone. */
function readHolder(path: string, uid: number): Promise<Buffer | undefined> {
  // Checked on the open file: a lock another user planted (or can write) would have us wait, or take over and remove a file of theirs.
  return explained(uid, onFileIfAny(path, readLimited(path, 64, 'INSTALL_LOCKED', (stats) => checkOwnedFile(path, stats, uid))));
}

const UNSAFE = new Set(['FILE_BAD_OWNER', 'FILE_WRITABLE_BY_OTHERS', 'DIRECTORY_WRITABLE_BY_OTHERS']);

/** `error`, if it refuses a path another user owns or can write, saying what to do about it. */
export function explain(error: unknown, uid: number): unknown {
  if (!isGatehouseError(error) || !UNSAFE.has(error.code)) return error;
  return new GatehouseError(
    error.code,
    `${error.message}: install reads, makes and removes files there before anything is verified, and verify --lock trusts the lock file it finds there; remove it if another user made it, or install ` +
      `into a directory that only this user (uid ${uid}) or root can write (a sticky one such as /tmp will do: what install makes in it is its own)`,
    { cause: error },
  );
}

/** `operation`, its refusals explained by {@link explain}. */
export function explained<T>(uid: number, operation: Promise<T>): Promise<T> {
  return operation.catch((error: unknown) => Promise.reject(explain(error, uid)));
}

function locked(path: string, into: string, pid: string | undefined, marker?: string): GatehouseError {
  const holder = pid === undefined ? '' : ` (pid ${pid})`;
  const remove = marker === undefined ? path : `${path} and ${marker}`;
  return new GatehouseError('INSTALL_LOCKED', `${into}: another install or rollback is running${holder}; wait for it to finish and try again, or if none is running, remove ${remove}`);
}
