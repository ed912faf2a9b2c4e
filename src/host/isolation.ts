/**
 * What separates a plugin from its host besides the process boundary: another user and group, resource
 * limits, a sandbox. Each is optional, and each fails the launch with a clear error when it was asked
 * for and cannot be had, never silently dropped.
 */
import { GatehouseError } from '../errors.js';
import { limitsPrefix, type ProcessLimits } from './process-limits.js';
import { sandboxPrefix, type SandboxOptions } from './sandbox.js';

export interface IsolationOptions {
  /**
   * Run the plugin as this user id, with `group` as its only group (supplementary groups are dropped).
   * Both or neither; only a host running as root may ask for another user. Other users cannot read the
   * host's memory or signal it, and a plugin running as its own user cannot read the host's files.
   */
  user?: number;
  group?: number;
  /** Resource limits, set with util-linux's prlimit (LIMITS_UNAVAILABLE without it). */
  limits?: ProcessLimits;
  /** Run the plugin in a bubblewrap sandbox (`true` or its options; SANDBOX_UNAVAILABLE without bwrap). */
  sandbox?: SandboxOptions | boolean;
}

export interface RunAs {
  uid: number;
  gid: number;
}

const MAX_ID = 0xfffffffe; // (uid_t)-1 means "unchanged" to the kernel

export function resolveRunAs(options: IsolationOptions): RunAs | undefined {
  const { user, group } = options;
  if (user === undefined && group === undefined) return undefined;
  // A plugin with another uid but the host's gid (often root's group) could still use that group's files.
  if (user === undefined || group === undefined) {
    throw new GatehouseError('INVALID_OPTIONS', 'user and group must be given together');
  }
  for (const [value, what] of [[user, 'user'], [group, 'group']] as const) {
    if (!Number.isSafeInteger(value) || value < 0 || value > MAX_ID) {
      const named = typeof value === 'string' ? `, got the name ${JSON.stringify(value)}: give its id (${what === 'user' ? 'id -u' : 'getent group'} ${value})` : '';
      throw new GatehouseError('INVALID_OPTIONS', `${what} must be a numeric id from 0 to ${MAX_ID}${named}`);
    }
  }
  const self = process.getuid?.() === user && process.getgid?.() === group;
  if (process.getuid?.() !== 0 && !self) {
    throw new GatehouseError('RUN_AS_UNAVAILABLE', `only a host running as root can run a plugin as user ${user} and group ${group}`);
  }
  return { uid: user, gid: group };
}

/** The argv that runs `command` with the limits and sandbox asked for (checked, or thrown as errors). */
export function isolatedCommand(
  options: IsolationOptions,
  command: string,
  args: readonly string[],
  spec: { socketDir: string; hostSocketDir?: string; cwd: string | undefined },
): readonly string[] {
  return [...limitsPrefix(options.limits), ...sandboxPrefix(options.sandbox, { command, ...spec }), command, ...args];
}
