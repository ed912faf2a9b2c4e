// Which host a sealed copy belongs to, told by its directory's name: a host killed by SIGKILL runs no exit hook, so
// its copies (whole plugin packages) would pile up in the seal root with every crash of a host that restarts.
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { effectiveUid } from '../discover/file-safety.js';
import { isSameProcess, PID_SCOPE_PATTERN, selfIdentity } from '../process-identity.js';

const PREFIX = 'gatehouse-seal-';
/** `gatehouse-seal-p<pid scope>-<pid>-<start time>-` and mkdtemp's six characters. */
const OWNED = new RegExp(`^gatehouse-seal-p(${PID_SCOPE_PATTERN})-([0-9]+)-([0-9]+)-[A-Za-z0-9]{6}$`);

interface Owner {
  scope: string;
  pid: number;
  startTime: string;
}

/** The host a copy's name gives. */
interface Copy {
  pid: number;
  startTime: string;
}

/** Roots this process has swept: once per root, at its first seal there (the copies of hosts that died before it started). */
const swept = new Map<string, Promise<void>>();

/** This process as a copy's owner, or undefined where /proc does not say (then copies are named as before, and never swept). */
async function owner(): Promise<Owner | undefined> {
  const { pid, startTime, scope } = await selfIdentity();
  return scope === undefined || startTime === undefined ? undefined : { scope, pid, startTime };
}

/** The prefix mkdtemp completes for this host's sealed copies under `root`, once the copies dead hosts left there are gone. */
export async function sealDirPrefix(root: string): Promise<string> {
  const me = await owner();
  if (me === undefined) return join(root, PREFIX);
  let sweeping = swept.get(root);
  if (sweeping === undefined) {
    // Only a host in our PID namespace on this boot of this machine can be judged (elsewhere its pid names another
    // process, or none), and only by pid and start time together (a pid alone may have been reused): a copy of a live
    // host, or of one we cannot judge, stays.
    const dead = async (copy: Copy): Promise<boolean> => !(copy.pid === me.pid && copy.startTime === me.startTime) && !(await isSameProcess(copy.pid, copy.startTime));
    // A copy that cannot be removed now stays as it was: the next host tries again, and sealing goes on.
    sweeping = removeCopies(root, me, dead).catch(() => {});
    swept.set(root, sweeping);
  }
  await sweeping;
  return join(root, `${PREFIX}p${me.scope}-${me.pid}-${me.startTime}-`);
}

/**
 * Removes the sealed copies this process made under `root` (a host stopping once every plugin has stopped), and
 * nothing else: a root another live host seals into too (a restored copy of a host's config run beside the original)
 * keeps that host's copies, which its running plugins were started from. Copies whose owner this process cannot
 * tell (no /proc) are left, as the sweep of dead hosts leaves them.
 */
export async function removeOwnSealedCopies(root: string): Promise<void> {
  const me = await owner();
  if (me !== undefined) await removeCopies(root, me, async (copy) => copy.pid === me.pid && copy.startTime === me.startTime);
}

/**
 * Removes the copies under `root` named with our scope whose owner `remove` picks. Only a directory of this user:
 * nothing else has any business in the root (the host user's alone, prepareSealRoot), and is left for its owner to see.
 */
async function removeCopies(root: string, me: Owner, remove: (copy: Copy) => Promise<boolean>): Promise<void> {
  const names = await readdir(root).catch(() => []);
  await Promise.all(
    names.map(async (name) => {
      const match = OWNED.exec(name);
      if (match === null || match[1] !== me.scope || !(await remove({ pid: Number(match[2]), startTime: match[3]! }))) return;
      const path = join(root, name);
      const stats = await lstat(path).catch(() => undefined);
      if (stats?.isDirectory() !== true || stats.uid !== effectiveUid()) return;
      await rm(path, { recursive: true, force: true });
    }),
  );
}
