import { chmod, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { listenAt } from './acceptor.js';

/**
 * A unix socket in a private directory whose every connection is piped into a connection `connect`
 * opens: grpc-js dials only addresses, so a channel reaches a multiplexed (yamux) stream through one.
 * The bytes are TLS end to end; the bridge only carries them.
 */
export interface LocalBridge {
  /** A grpc-js target. */
  readonly target: string;
  readonly path: string;
  /** Why the last `connect` failed, if it did: the channel itself only sees a dropped connection. */
  lastError(): Error | undefined;
  close(): Promise<void>;
}

/** `wanted()` says whether the local connection a `connect` is for is still open: one that is gone needs nothing. */
export async function openLocalBridge(directory: string, connect: (wanted: () => boolean) => Promise<Duplex>): Promise<LocalBridge> {
  const path = join(directory, `bridge-${randomBytes(6).toString('hex')}.sock`);
  let lastError: Error | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((local) => {
    sockets.add(local);
    local.on('close', () => sockets.delete(local));
    local.on('error', () => {});
    connect(() => !local.destroyed).then(
      (remote) => {
        remote.on('error', () => {});
        // Attack: a peer slow to acknowledge knocks while grpc-js gives up on its connections; each late
        // stream would stay open, held against the session's stream limit, until the session ends.
        if (local.destroyed) {
          remote.destroy();
          return;
        }
        local.pipe(remote);
        remote.pipe(local);
        local.on('close', () => remote.destroy());
        remote.on('close', () => local.destroy());
      },
      (error: unknown) => {
        lastError = error instanceof Error ? error : new Error(String(error));
        local.destroy();
      },
    );
  });
  await listenAt(server, { path });
  // Only this process may use the bridge: the directory is private and the socket 0600.
  await chmod(path, 0o600);
  return {
    target: `unix:${path}`,
    path,
    lastError: () => lastError,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(path, { force: true });
    },
  };
}
