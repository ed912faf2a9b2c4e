/**
 * Resource limits for a plugin, set by util-linux's `prlimit`, which sets them on itself and execs
 * the next program in place: the plugin and all its children inherit them, and cannot raise them
 * (the hard limit is the soft one, except one second of CPU for the plugin to hear SIGXCPU).
 */
import { GatehouseError } from '../errors.js';
import { findSystemTool } from './system-tools.js';

export interface ProcessLimits {
  /**
   * Largest virtual address space, in bytes (RLIMIT_AS): allocations beyond it fail. Runtimes reserve
   * far more address space than they use: Node.js needs about 1 GiB to start, Go much less.
   */
  memoryBytes?: number;
  /** CPU seconds the plugin may use in all (RLIMIT_CPU): then the kernel sends SIGXCPU, and SIGKILL a second later. */
  cpuSeconds?: number;
  /** Most file descriptors open at once (RLIMIT_NOFILE); opening more fails with EMFILE. */
  openFiles?: number;
}

/** The argv prefix that applies `limits`, or an empty one when none is set. */
export function limitsPrefix(limits: ProcessLimits | undefined): readonly string[] {
  if (limits === undefined) return [];
  const settings: string[] = [];
  const add = (value: number | undefined, option: string, what: string, hardExtra = 0): void => {
    if (value === undefined) return;
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new GatehouseError('INVALID_OPTIONS', `limits.${what} must be a positive integer`);
    }
    settings.push(`--${option}=${value}:${value + hardExtra}`);
  };
  add(limits.memoryBytes, 'as', 'memoryBytes');
  add(limits.cpuSeconds, 'cpu', 'cpuSeconds', 1);
  add(limits.openFiles, 'nofile', 'openFiles');
  if (settings.length === 0) return [];
  const prlimit = process.platform === 'linux' ? findSystemTool('prlimit') : undefined;
  // Running the plugin without the limits it was given would be a silent downgrade.
  if (prlimit === undefined) {
    throw new GatehouseError('LIMITS_UNAVAILABLE', 'resource limits need util-linux\'s prlimit, which was not found in /usr/bin, /bin, /usr/sbin or /sbin');
  }
  return [prlimit, ...settings, '--'];
}
