import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where the system's own tools (util-linux, bubblewrap) are looked for. Not PATH: whoever controls the
 * host's PATH would choose the program that wraps, limits or sandboxes every plugin.
 */
const SYSTEM_DIRECTORIES = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'];

/** The absolute path of an executable regular file called `name` in a system directory, if any. */
export function findSystemTool(name: string): string | undefined {
  for (const directory of SYSTEM_DIRECTORIES) {
    const candidate = join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}
