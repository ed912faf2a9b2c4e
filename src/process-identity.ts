// Which process a pid names: a pid alone can be reused by another process once its owner has exited,
// so a record of a process (a reattach record, an install lock) keeps its start time as well.
import { lstat, readdir, readFile, readlink, utimes } from 'node:fs/promises';

/**
 * The fields of a /proc/PID/stat line from the third (the state) on. The second, the command name in
 * parentheses, may itself hold spaces or parentheses, so the split starts after its last ')'.
 */
export function statFieldsAfterName(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * When the process started, in clock ticks since boot (field 22 of /proc/PID/stat), or undefined
 * where there is no /proc. A pid with another start time is another process that reused the number.
 */
export async function processStartTime(pid: number): Promise<string | undefined> {
  return (await statFields(pid))?.[19];
}

async function statFields(pid: number): Promise<string[] | undefined> {
  try {
    return statFieldsAfterName(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` still names the process that had `startTime`, and it has not exited (where there is no /proc, and
 * so no start time, whether it exists at all). A zombie has exited: only its parent has not reaped it yet (a host
 * killed by SIGKILL stays one until its parent, or a container's slow pid 1, gets to it), and its marks and locks
 * must not hold a restarted host off meanwhile.
 */
export async function isSameProcess(pid: number, startTime: string | undefined): Promise<boolean> {
  if (!exists(pid)) return false;
  const fields = await statFields(pid);
  if (fields === undefined) return startTime === undefined;
  if (fields[19] !== startTime) return false;
  // Attack: a process that ends only its first thread (pthread_exit) shows that thread as a zombie while its others run
  // on: taken for an exit, a hostile reattached plugin was no longer signalled, and outlived its host's kill().
  return !isExited(fields[0]) || (await hasLiveThread(pid));
}

function isExited(state: string | undefined): boolean {
  return state === 'Z' || state === 'X';
}

/** Whether any thread of `pid` has not exited: a zombie first thread with live others is a running process. */
async function hasLiveThread(pid: number): Promise<boolean> {
  let tids: string[];
  try {
    tids = await readdir(`/proc/${pid}/task`);
  } catch {
    return false;
  }
  for (const tid of tids) {
    if (tid === String(pid)) continue;
    const state = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').then((stat) => statFieldsAfterName(stat)[0], () => undefined);
    // A thread that vanished as we looked has exited; any other state is a thread still running.
    if (state !== undefined && !isExited(state)) return true;
  }
  return false;
}

function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let scope: Promise<string | undefined> | undefined;

/**
 * Where a pid names a process: this PID namespace on this boot of this machine (`<namespace inode>.<boot id>`), or
 * undefined where /proc does not say. A pid recorded in another scope names another process here, or none: a host in
 * another container sharing a volume, or on another machine sharing a network file system (where even the namespace's
 * number is the same: the first one's is a constant).
 */
export function pidScope(): Promise<string | undefined> {
  scope ??= Promise.all([
    readlink('/proc/self/ns/pid').catch(() => ''),
    readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => ''),
  ]).then(([link, boot]) => {
    const namespace = /^pid:\[(\d{1,20})\]$/.exec(link)?.[1];
    const bootId = boot.trim().replaceAll('-', '');
    return namespace !== undefined && /^[0-9a-f]{32}$/.test(bootId) ? `${namespace}.${bootId}` : undefined;
  });
  return scope;
}

/** A scope as {@link pidScope} writes it, for the patterns that read one back out of a name. */
export const PID_SCOPE_PATTERN = '[0-9]{1,20}\\.[0-9a-f]{32}';

/** How often a holder in another scope refreshes its mark's mtime, and how old a mark may be before it is taken for a dead holder's. */
export const LEASE_REFRESH_MS = 10_000;
export const LEASE_EXPIRY_MS = 6 * LEASE_REFRESH_MS;

/**
 * Keeps `path`'s mtime fresh while the caller holds it: a holder in another scope cannot be judged by its pid, only by
 * a mark it keeps touching. Returns what stops it.
 */
export function holdLease(path: string): () => void {
  const timer = setInterval(() => {
    const now = new Date();
    // A refresh that fails leaves the mark to age: another host then takes it over, as it would a dead holder's.
    utimes(path, now, now).catch(() => {});
  }, LEASE_REFRESH_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** How long ago the holder of a mark in another scope last refreshed it (ms), or undefined if the mark is gone. */
export async function leaseAge(path: string): Promise<number | undefined> {
  const stats = await lstat(path).catch(() => undefined);
  return stats === undefined ? undefined : Date.now() - stats.mtimeMs;
}

/** A process as a mark, lock or sealed copy names its holder: pid, start time and the pid's scope (each where /proc says). */
export interface ProcessIdentity {
  pid: number;
  startTime: string | undefined;
  scope: string | undefined;
}

let self: Promise<ProcessIdentity> | undefined;

/** This process as its marks, locks and sealed copies name it (read once). */
export function selfIdentity(): Promise<ProcessIdentity> {
  self ??= Promise.all([processStartTime(process.pid), pidScope()]).then(([startTime, scope]) => ({ pid: process.pid, startTime, scope }));
  return self;
}

/**
 * Whether the holder a mark or lock at `markPath` names still holds it. In our scope, by pid and start time; in another
 * (another container, another machine), its pid names nobody here, so only the lease it keeps on the mark tells
 * (holdLease): it holds while the mark is younger than LEASE_EXPIRY_MS, and `leaseAgeMs` says how fresh it is.
 * A holder that names no scope (an older version) is judged as ours.
 */
export async function holderHolds(holder: ProcessIdentity, markPath: string): Promise<{ holds: boolean; leaseAgeMs?: number }> {
  if (holder.scope !== undefined && holder.scope !== (await pidScope())) {
    const age = await leaseAge(markPath);
    return age !== undefined && age < LEASE_EXPIRY_MS ? { holds: true, leaseAgeMs: age } : { holds: false };
  }
  return { holds: await isSameProcess(holder.pid, holder.startTime) };
}
