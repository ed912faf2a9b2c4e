/**
 * The host's own directory for the sockets it serves one plugin: its brokered services and, multiplexed,
 * the local bridges its channels dial. Never the plugin's directory: a plugin run as another user owns that
 * one, and could swap in it what the host binds, chmods, chowns or dials there.
 */
import { shareWithGroup } from '../transport/socket-group.js';
import { makeHostDir, type HostDir } from './live-plugins.js';

export class HostSocketDir {
  private made: Promise<HostDir> | undefined;
  private released: Promise<void> | undefined;

  /** `socketGroup`: PLUGIN_UNIX_SOCKET_GROUP's gid, whose members (the plugin's user) must reach the sockets served here. */
  constructor(private readonly socketGroup: number | undefined) {}

  /** The directory, made on first use (a plugin without brokered services or multiplexing needs none): 0700, or 0710 for the group. */
  path(): Promise<string> {
    // A directory made after release() would outlive the plugin.
    if (this.released !== undefined) return Promise.reject(new Error('the plugin is gone'));
    this.made ??= makeHostDir('gatehouse-host-').then(async (dir) => {
      // Enter, not list, for the group: its members reach the sockets they are told of, and add or swap nothing.
      if (this.socketGroup !== undefined) await shareWithGroup(dir.path, this.socketGroup, 0o710);
      return dir;
    });
    return this.made.then((dir) => dir.path);
  }

  /** Removes the directory once the plugin is gone (nothing in it is the plugin's); idempotent. */
  release(): Promise<void> {
    return (this.released ??= (this.made ?? Promise.resolve(undefined)).then(
      (dir) => dir?.remove(),
      () => undefined,
    ));
  }
}
