// What /proc says about processes the host no longer tracks: grandchildren in their own session, or
// in a sandbox's PID namespace, whose pids the host never learns.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { statFieldsAfterName } from '../../src/process-identity.js';

function allPids(): number[] {
  return readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name)).map(Number);
}

/** The parent pid, field 4 of /proc/PID/stat. */
function parentOf(pid: number): number | undefined {
  try {
    return Number(statFieldsAfterName(readFileSync(`/proc/${pid}/stat`, 'utf8'))[1]);
  } catch {
    return undefined;
  }
}

/** Every live descendant of `pid`. */
export function descendants(pid: number): number[] {
  const parents = new Map(allPids().map((p) => [p, parentOf(p)]));
  const found: number[] = [];
  let frontier = [pid];
  while (frontier.length > 0) {
    const children = [...parents].filter(([, parent]) => parent !== undefined && frontier.includes(parent)).map(([p]) => p);
    found.push(...children);
    frontier = children;
  }
  return found;
}

export function pidNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/** The PID namespace of `pid`'s descendants when it differs from this process's: a sandbox's. */
export function sandboxNamespace(pid: number): string | undefined {
  const ours = pidNamespace(process.pid);
  return descendants(pid).map(pidNamespace).find((ns) => ns !== undefined && ns !== ours);
}

/** The descendant of `pid` whose command line holds `part`. */
export function descendantRunning(pid: number, part: string): number | undefined {
  return descendants(pid).find((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(part);
    } catch {
      return false;
    }
  });
}

/** Processes (zombies included) whose PID namespace is `namespace`. */
export function processesIn(namespace: string): number[] {
  return allPids().filter((pid) => pidNamespace(pid) === namespace);
}

/** From /proc/PID/status: the real, effective, saved and filesystem ids, and the supplementary groups. */
export function credentials(pid: number): { uids: string; gids: string; groups: string } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): string => (new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1] ?? '').trim().replace(/\s+/g, ' ');
  return { uids: field('Uid'), gids: field('Gid'), groups: field('Groups') };
}

/** A limit's soft value from /proc/PID/limits, e.g. 'Max open files'. */
export function softLimit(pid: number, name: string): string | undefined {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith(name));
  return line?.slice(name.length).trim().split(/\s+/)[0];
}
