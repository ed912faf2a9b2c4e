import { chmod, chown, readFile } from 'node:fs/promises';
import { GatehouseError, type GatehouseErrorCode } from '../errors.js';

/**
 * The gid of PLUGIN_UNIX_SOCKET_GROUP's value: a number as is, a name from /etc/group (as Go's
 * user.LookupGroup does without cgo). A name that is not there is refused, not ignored.
 */
export async function resolveGroup(group: string, code: GatehouseErrorCode): Promise<number> {
  if (/^[0-9]+$/.test(group)) return Number(group);
  const entries = await readFile('/etc/group', 'utf8').catch(() => '');
  for (const line of entries.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^[0-9]+$/.test(gid)) return Number(gid);
  }
  throw new GatehouseError(code, `unix socket group ${JSON.stringify(group)} is not in /etc/group`);
}

/**
 * Gives a socket (0660) or its directory (0710: enter, not list) to the group: members may connect,
 * nobody else may, and no one but us may add or swap files.
 */
export async function shareWithGroup(path: string, gid: number, mode: 0o660 | 0o710): Promise<void> {
  await chown(path, process.getuid?.() ?? -1, gid);
  await chmod(path, mode);
}

/** A socket this side serves: private (0600), or shared with the socket group (0660). */
export async function protectSocket(path: string, gid: number | undefined): Promise<void> {
  if (gid === undefined) await chmod(path, 0o600);
  else await shareWithGroup(path, gid, 0o660);
}
