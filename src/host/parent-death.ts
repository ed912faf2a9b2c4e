/**
 * The kernel's parent-death signal (PR_SET_PDEATHSIG), set through util-linux's `setpriv --pdeathsig
 * KILL`, which then execs the plugin in place: same pid, same process group, nothing left in between.
 * A host killed with SIGKILL runs no exit hook; the kernel then SIGKILLs its plugins itself, whatever
 * language they are written in.
 *
 * Limits, from prctl(2): the signal fires when the *thread* that spawned the plugin exits (Node spawns
 * from the thread running the event loop: the main thread, or a worker's own thread, so a plugin
 * launched from a worker dies with that worker); it is cleared when the plugin execs a set-user-ID or
 * set-group-ID program or one with file capabilities; it reaches the plugin, not its children (kill()
 * and the exit hook reach the whole process group; a sandbox's PID namespace takes its children too).
 */
import { execFile } from 'node:child_process';
import type { Logger } from '../logger.js';
import { findSystemTool } from './system-tools.js';

let probe: Promise<readonly string[]> | undefined;

/** setpriv understands --pdeathsig since util-linux 2.33; asking an older one would fail every launch. */
async function probeSetpriv(): Promise<readonly string[]> {
  const setpriv = process.platform === 'linux' ? findSystemTool('setpriv') : undefined;
  if (setpriv === undefined) return [];
  const dump = await new Promise<string>((resolve) => {
    execFile(setpriv, ['--pdeathsig', 'KILL', '--', setpriv, '--dump'], { env: {}, timeout: 10_000 }, (error, stdout) =>
      resolve(error ? '' : stdout),
    );
  });
  return /^Parent death signal: KILL$/m.test(dump) ? [setpriv, '--pdeathsig', 'KILL', '--'] : [];
}

/**
 * The argv prefix that has the kernel SIGKILL the plugin when the host dies, or an empty one where
 * setpriv is missing or too old (then only a gatehouse plugin, which watches its parent, exits by itself).
 */
export async function parentDeathPrefix(logger: Logger): Promise<readonly string[]> {
  probe ??= probeSetpriv();
  const prefix = await probe;
  if (prefix.length === 0) {
    logger.debug({}, 'setpriv --pdeathsig is unavailable: a plugin outlives a host killed with SIGKILL unless it watches its parent');
  }
  return prefix;
}
