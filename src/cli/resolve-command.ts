import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { GatehouseError } from '../errors.js';

/** The absolute path of COMMAND: as given when it has a "/", else the first executable match in PATH. */
export async function resolveCommand(command: string): Promise<string> {
  if (command.includes('/')) return resolve(command);
  for (const directory of (process.env.PATH ?? '').split(delimiter)) {
    // Empty and relative PATH entries name the working directory, which need not be ours to trust.
    if (!isAbsolute(directory)) continue;
    const candidate = join(directory, command);
    try {
      if ((await stat(candidate)).isFile()) {
        await access(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      // not here, or not executable by us
    }
  }
  throw new GatehouseError('SPAWN_FAILED', `cannot start plugin: ${JSON.stringify(command)} not found in PATH`);
}
