/**
 * Removing a plugin's private socket directory once the plugin has exited. The path may come from a
 * reattach record, so it is checked, not trusted; and everything inside it is the plugin's, so it is
 * removed with the plugin's rights, never the host's.
 */
import { spawn, spawnSync } from 'node:child_process';
import { lstatSync, rmdirSync, rmSync, type Stats } from 'node:fs';
import { lstat, rm, rmdir } from 'node:fs/promises';
import { basename } from 'node:path';
import { peerText } from '../transport/peer-text.js';
import { findSystemTool } from './system-tools.js';

/** What launch()'s mkdtemp('gatehouse-') makes: six letters or digits after the prefix. */
const MADE_BY_US = /^gatehouse-[A-Za-z0-9]{6}$/;
/** How long `rm` may take over a directory of the plugin's: a file system the plugin serves (FUSE) may never answer. */
const REMOVE_TIMEOUT_MS = 10_000;
/** The same at exit, per plugin: a dying host waits for each synchronously. */
const REMOVE_AT_EXIT_TIMEOUT_MS = 2_000;
/** What of rm's complaints is read (one line per entry it could not remove); the first line goes into the warning. */
const MAX_RM_OUTPUT_BYTES = 64 * 1024;

const isGone = (error: NodeJS.ErrnoException): boolean => error.code === 'ENOENT' || error.code === 'ENOTDIR';

/** With whose rights `rm` removes the directory: the host's own, or those of its owner, the plugin's user. */
type Owner = 'host' | { uid: number; gid: number };
type Removal = { left: string } | { as: Owner };

/**
 * Whether `dir` is one launch() made (named as it names them, a real directory, not a link, owned by us
 * or the plugin's user, writable by no one else), and with whose rights to remove it; `examined` is what
 * lstat said of it. Undefined when it is already gone.
 */
function removal(dir: string, examined: Stats | NodeJS.ErrnoException, pluginUid: number | undefined): Removal | undefined {
  // Attack: a record (file or object) naming another directory for kill() to remove recursively.
  if (!MADE_BY_US.test(basename(dir))) return { left: `${dir} is not named as gatehouse names socket directories` };
  if (examined instanceof Error) {
    // Gone is gone; anything else (a file system the plugin mounted there refusing us) is said, not taken for gone.
    return isGone(examined) ? undefined : { left: `${dir} is left in place: it cannot be examined: ${examined.message}` };
  }
  const stats = examined;
  if (!stats.isDirectory()) return { left: `${dir} is not a directory` };
  const ownUid = process.getuid?.();
  if (stats.uid !== ownUid && stats.uid !== pluginUid) return { left: `${dir} belongs to uid ${stats.uid}, neither us nor the plugin` };
  if ((stats.mode & 0o022) !== 0) return { left: `${dir} is writable by others (mode ${(stats.mode & 0o777).toString(8)})` };
  // Attack: a plugin swapping, while the host removes its directory, a directory in it for a link to someone
  // else's: Node's recursive removal works on paths, went through the link and deleted what it led to (as
  // root, for a plugin run as another user; as the host's user, for a sandboxed one). GNU rm walks with
  // openat and O_NOFOLLOW, so a link swapped in is removed, not followed; run as the plugin's user, it can
  // delete only what that user could anyway.
  return stats.uid === ownUid ? { as: 'host' } : { as: { uid: stats.uid, gid: stats.gid } };
}

/**
 * `rm` removing `dir` with `owner`'s rights: no shell, an absolute path, an empty environment, never across a
 * mount. Without rm, the host removes a directory of its own user's itself (only a plugin running as that
 * user, unsandboxed, could have swapped anything there, and it can delete all the host can anyway); one of
 * another user's stays.
 */
function rmCommand(dir: string, owner: { as: Owner }): { file: string; args: string[]; options: { uid?: number; gid?: number; env: NodeJS.ProcessEnv } } | 'host' | string {
  const file = findSystemTool('rm');
  if (file === undefined) {
    return owner.as === 'host' ? 'host' : `${dir} is left in place: no rm in the system directories to remove it as uid ${owner.as.uid}, the plugin's user`;
  }
  const ids = owner.as === 'host' ? {} : { uid: owner.as.uid, gid: owner.as.gid };
  return { file, args: ['-r', '-f', '--one-file-system', '--', dir], options: { ...ids, env: { LC_ALL: 'C' } } };
}

/**
 * After rm: the directory itself goes now if rm emptied it (the plugin's user may not write the temporary
 * directory it lies in); else why it stays.
 */
function afterRm(dir: string, owner: { as: Owner }, outcome: string | undefined, rmdirError: NodeJS.ErrnoException | undefined): string | undefined {
  if (rmdirError === undefined || rmdirError.code === 'ENOENT') return undefined;
  const why = outcome ?? (rmdirError.code === 'ENOTEMPTY' ? 'it is not empty' : rmdirError.message);
  if (owner.as === 'host') return `${dir} is left in place, in part: ${why}`;
  return `${dir} is left in place, in part: the host removes it as uid ${owner.as.uid}, the plugin's user, so that nothing the plugin swaps in there leads further: ${why}`;
}

function rmOutcome(status: number | null, signal: NodeJS.Signals | null, stderr: string, timeoutMs: number): string | undefined {
  if (status === 0) return undefined;
  if (signal !== null) return `rm did not finish within ${timeoutMs} ms (a file system that does not answer?)`;
  return peerText(stderr.trim().split('\n')[0] ?? `rm exited with ${status}`);
}

/**
 * Removes a socket directory once its plugin has exited, if it is one launch() made. Returns why it was
 * left in place (never throws), or undefined when it was removed or is already gone.
 */
export async function removeSocketDir(dir: string, pluginUid: number | undefined): Promise<string | undefined> {
  const how = removal(dir, await lstat(dir).catch((error: NodeJS.ErrnoException) => error), pluginUid);
  if (how === undefined) return undefined;
  if ('left' in how) return how.left;
  const command = rmCommand(dir, how);
  if (command === 'host') return rm(dir, { recursive: true, force: true }).then(() => undefined, (error: Error) => `${dir} is left in place: ${error.message}`);
  if (typeof command === 'string') return command;
  const outcome = await new Promise<string | undefined>((resolve) => {
    const child = spawn(command.file, command.args, { ...command.options, stdio: ['ignore', 'ignore', 'pipe'], timeout: REMOVE_TIMEOUT_MS, killSignal: 'SIGKILL' });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < MAX_RM_OUTPUT_BYTES) stderr += chunk.toString('utf8');
    });
    child.once('error', (error) => resolve(error.message));
    child.once('close', (status, signal) => resolve(rmOutcome(status, signal, stderr, REMOVE_TIMEOUT_MS)));
  });
  return afterRm(dir, how, outcome, await rmdir(dir).then(() => undefined, (error: NodeJS.ErrnoException) => error));
}

/** removeSocketDir for an exiting host, which cannot wait for a promise: synchronous, and bounded per directory. */
export function removeSocketDirSync(dir: string, pluginUid: number | undefined): string | undefined {
  let examined: Stats | NodeJS.ErrnoException;
  try {
    examined = lstatSync(dir);
  } catch (error) {
    examined = error as NodeJS.ErrnoException;
  }
  const how = removal(dir, examined, pluginUid);
  if (how === undefined) return undefined;
  if ('left' in how) return how.left;
  try {
    const command = rmCommand(dir, how);
    if (command === 'host') {
      rmSync(dir, { recursive: true, force: true });
      return undefined;
    }
    if (typeof command === 'string') return command;
    const result = spawnSync(command.file, command.args, {
      ...command.options,
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: REMOVE_AT_EXIT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      maxBuffer: MAX_RM_OUTPUT_BYTES,
    });
    const outcome =
      result.error !== undefined && result.signal === null
        ? result.error.message
        : rmOutcome(result.status, result.signal, String(result.stderr ?? ''), REMOVE_AT_EXIT_TIMEOUT_MS);
    let rmdirError: NodeJS.ErrnoException | undefined;
    try {
      rmdirSync(dir);
    } catch (error) {
      rmdirError = error as NodeJS.ErrnoException;
    }
    return afterRm(dir, how, outcome, rmdirError);
  } catch (error) {
    return `${dir} is left in place: ${(error as Error).message}`;
  }
}
