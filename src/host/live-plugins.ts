import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onExit } from 'signal-exit';
import { removeSocketDirSync } from './socket-dir.js';

/** What the exit hook needs to leave nothing behind: the process group and the private directory. */
export interface LivePlugin {
  readonly pid: number;
  readonly socketDir: string;
  /** The user the plugin runs as, when another than the host's: its directory is removed with that user's rights. */
  readonly pluginUid: number | undefined;
  kill(): Promise<unknown>;
  /** Records, synchronously, that the exiting host is killing it (a dying host cannot wait for the log). */
  recordHostExit?(): void;
}

const live = new Set<LivePlugin>();
/** HostDirs not removed yet (the host's links to plugin sockets, its socket directories): they outlive no host. */
const leftovers = new Set<string>();
let hookInstalled = false;

/**
 * A plugin must not outlive its host: it would keep running code nobody supervises. When the host
 * exits or is signalled, every live plugin's process group gets SIGKILL (a dying host cannot wait for
 * a graceful stop) and its private directory is removed.
 */
function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  onExit(() => {
    // Every plugin is killed before any directory is removed: a removal that fails or takes its time
    // must not leave the next plugin running.
    for (const plugin of live) {
      // Before the kill: an auditor must see why the plugin ended, even when the host did not stop it itself.
      try {
        plugin.recordHostExit?.();
      } catch {
        // A custom audit log that throws must not keep this plugin (or the next) from being killed.
      }
      try {
        process.kill(-plugin.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // Nothing to report to: the host is exiting, and what is left stays for its operator to find.
    for (const plugin of live) removeSocketDirSync(plugin.socketDir, plugin.pluginUid);
    for (const dir of leftovers) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // The next directory still goes.
      }
    }
  });
}

export function trackPlugin(plugin: LivePlugin): void {
  installExitHook();
  live.add(plugin);
}

export function untrackPlugin(plugin: LivePlugin): void {
  live.delete(plugin);
}

/** A directory of the host's own (0700, in the temporary directory), for as long as one plugin needs it. */
export interface HostDir {
  readonly path: string;
  /** Removes it now; else the exit hook does, if the host exits first. */
  remove(): Promise<void>;
}

/** Makes a fresh HostDir named `prefix` and six random characters; nothing in it is a plugin's. */
export async function makeHostDir(prefix: string): Promise<HostDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  const forget = removeAtExit(path);
  return { path, remove: () => rm(path, { recursive: true, force: true }).then(forget) };
}

/**
 * Has the exit hook remove a directory of the host's (a plugin's sealed copy, say) if the host exits
 * before it is removed otherwise; call the function returned once it is.
 */
export function removeAtExit(path: string): () => void {
  installExitHook();
  leftovers.add(path);
  return () => void leftovers.delete(path);
}

/** Kills every plugin this process launched and still runs, gracefully, in parallel. */
export async function killAllPlugins(): Promise<void> {
  await Promise.allSettled([...live].map((plugin) => plugin.kill()));
}
