// Which process a pid names: a pid alone can be reused by another process once its owner has exited,
// so a record of a process (a reattach record, an install lock) keeps its start time as well.
import { readFile, readlink } from 'node:fs/promises';

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
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return statFieldsAfterName(stat)[19];
}

/**
 * Whether `pid` still names the process that had `startTime` (where there is no /proc, and so no start
 * time, whether it exists at all).
 */
export async function isSameProcess(pid: number, startTime: string | undefined): Promise<boolean> {
  if (!exists(pid)) return false;
  return (await processStartTime(pid)) === startTime;
}

function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let namespace: Promise<string | undefined> | undefined;

/**
 * This process's PID namespace (the inode number of /proc/self/ns/pid), or undefined where /proc does not say. A pid
 * recorded in another namespace names another process here, or none: only a record of our own namespace can be judged.
 */
export function pidNamespace(): Promise<string | undefined> {
  namespace ??= readlink('/proc/self/ns/pid').then(
    (link) => /^pid:\[(\d+)\]$/.exec(link)?.[1],
    () => undefined,
  );
  return namespace;
}
