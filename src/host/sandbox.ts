/**
 * An optional sandbox for a plugin, built with bubblewrap (`bwrap`, Debian package `bubblewrap`). The
 * plugin sees a filesystem made of the system's read-only /usr (and the /bin, /lib... that lead into
 * it), its own command, the paths the caller lists and its socket directory; a fresh /proc, /dev and
 * /tmp; and new user, PID, network, IPC, UTS and cgroup namespaces, with no capabilities. It cannot read
 * the host's files, see or signal other processes, or reach any network, and nothing it starts
 * survives it: the PID namespace ends when the plugin does, or when its host dies.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { GatehouseError } from '../errors.js';
import { findSystemTool } from './system-tools.js';

export interface SandboxOptions {
  /** Paths the plugin may read, bound read-only at the same place (scripts, data, configuration). */
  readOnlyPaths?: readonly string[];
  /** Paths the plugin may write, bound read-write at the same place. */
  writablePaths?: readonly string[];
}

/** Where dynamically linked programs find their loader and libraries; /etc is left out on purpose. */
const SYSTEM_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

function checkPaths(paths: readonly string[] | undefined, what: string): readonly string[] {
  for (const path of paths ?? []) {
    if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0')) {
      throw new GatehouseError('INVALID_OPTIONS', `sandbox.${what} must hold absolute paths without NUL`);
    }
  }
  return paths ?? [];
}

/** Binds the system directories; on a merged-/usr system /bin, /lib... are symlinks, recreated as such. */
function systemBinds(): string[] {
  const binds: string[] = [];
  for (const path of SYSTEM_PATHS) {
    let stats;
    try {
      stats = lstatSync(path);
    } catch {
      continue;
    }
    if (stats.isSymbolicLink()) binds.push('--symlink', readlinkSync(path), path);
    else if (stats.isDirectory()) binds.push('--ro-bind', path, path);
  }
  return binds;
}

export interface SandboxSpec {
  command: string;
  socketDir: string;
  /** The host's own socket directory (HostSocketDir), whose brokered sockets the plugin dials. */
  hostSocketDir?: string;
  cwd: string | undefined;
}

/**
 * The argv prefix that runs the command in the sandbox, or an empty one when none was asked for.
 * Throws SANDBOX_UNAVAILABLE when one was asked for and bubblewrap is not installed: running the
 * plugin unconfined instead would be a silent downgrade.
 */
export function sandboxPrefix(options: SandboxOptions | boolean | undefined, spec: SandboxSpec): readonly string[] {
  if (options === undefined || options === false) return [];
  const settings = options === true ? {} : options;
  const readOnly = checkPaths(settings.readOnlyPaths, 'readOnlyPaths');
  const writable = checkPaths(settings.writablePaths, 'writablePaths');
  const bwrap = process.platform === 'linux' ? findSystemTool('bwrap') : undefined;
  if (bwrap === undefined) {
    throw new GatehouseError('SANDBOX_UNAVAILABLE', 'a sandbox was asked for but bubblewrap (bwrap) is not installed (Debian: apt install bubblewrap)');
  }
  return [
    bwrap,
    // The sandbox, and everything in its PID namespace, dies with the process the host started.
    '--die-with-parent',
    '--unshare-all',
    // Root in the host would otherwise keep its capabilities (mount, ptrace, raw sockets) inside.
    '--cap-drop', 'ALL',
    ...systemBinds(),
    '--proc', '/proc',
    '--dev', '/dev',
    // Mounted before the binds below: a command, path or socket directory under /tmp stays visible.
    '--tmpfs', '/tmp',
    '--ro-bind', spec.command, spec.command,
    ...readOnly.flatMap((path) => ['--ro-bind', path, path]),
    ...writable.flatMap((path) => ['--bind', path, path]),
    // At the same path inside and out, so the address in the handshake line means the same to both.
    '--bind', spec.socketDir, spec.socketDir,
    // Read-only: the plugin connects to the host's sockets there (connecting needs no write access to the
    // mount) and can add, remove or swap nothing.
    ...(spec.hostSocketDir !== undefined ? ['--ro-bind', spec.hostSocketDir, spec.hostSocketDir] : []),
    '--chdir', spec.cwd ?? '/',
    '--',
  ];
}
