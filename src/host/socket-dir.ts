/**
 * Removing a plugin's private socket directory once the plugin has exited. The path may come from a
 * reattach record, so it is checked, not trusted.
 */
import { lstat, rm } from 'node:fs/promises';
import { basename } from 'node:path';

/** What launch()'s mkdtemp('gatehouse-') makes: six letters or digits after the prefix. */
const MADE_BY_US = /^gatehouse-[A-Za-z0-9]{6}$/;

/**
 * Removes a socket directory once its plugin has exited, if it is one launch() made: named as it
 * names them, a real directory (not a link), owned by us or the plugin's user, writable by no one
 * else. Returns why it was left in place, or undefined when it was removed or is already gone.
 */
export async function removeSocketDir(dir: string, pluginUid: number | undefined): Promise<string | undefined> {
  // Attack: a record (file or object) naming another directory for kill() to remove recursively.
  if (!MADE_BY_US.test(basename(dir))) return `${dir} is not named as gatehouse names socket directories`;
  const stats = await lstat(dir).catch(() => undefined);
  if (stats === undefined) return undefined;
  if (!stats.isDirectory()) return `${dir} is not a directory`;
  if (stats.uid !== process.getuid?.() && stats.uid !== pluginUid) return `${dir} belongs to uid ${stats.uid}, neither us nor the plugin`;
  if ((stats.mode & 0o022) !== 0) return `${dir} is writable by others (mode ${(stats.mode & 0o777).toString(8)})`;
  await rm(dir, { recursive: true, force: true });
  return undefined;
}
