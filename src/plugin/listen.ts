import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { listenAt } from '../transport/acceptor.js';
import { protectSocket } from '../transport/socket-group.js';
import { YamuxSession } from '../transport/yamux.js';

export interface ListenSpec {
  network: 'unix' | 'tcp';
  /** The plugin's private directory, for a unix socket. */
  socketDir: string;
  /** PLUGIN_MIN_PORT..PLUGIN_MAX_PORT, for TCP. */
  minPort: number;
  maxPort: number;
  /** PLUGIN_UNIX_SOCKET_GROUP's gid: the socket is then 0660 for that group instead of 0600. */
  group?: number;
}

export interface Listening {
  network: 'unix' | 'tcp';
  /** As the handshake line names it: a bare path, or 127.0.0.1:port. */
  address: string;
  close(): void;
}

function cannotListen(where: string, cause?: unknown): GatehouseError {
  return new GatehouseError('CONNECT_FAILED', `cannot listen on ${where}`, cause === undefined ? undefined : { cause });
}

/**
 * Ports to try, from a random one in the range on, so plugins started together rarely collide. Never 0:
 * listening there takes any free port, outside the host's range.
 */
function portsToTry(minPort: number, maxPort: number): number[] {
  const first = Math.max(minPort, 1);
  const count = Math.max(0, maxPort - first + 1);
  const start = Math.floor(Math.random() * count);
  return Array.from({ length: count }, (_, i) => first + ((start + i) % count));
}

/** Listens on the plugin's socket in its private directory, 0600 (0660 for the socket group); returns its path. */
async function listenOnPluginSocket(server: Server, spec: Pick<ListenSpec, 'socketDir' | 'group'>): Promise<string> {
  const path = join(spec.socketDir, 'plugin.sock');
  await listenAt(server, { path }).catch((cause: unknown) => {
    throw isGatehouseError(cause) ? cause : cannotListen(path, cause);
  });
  await protectSocket(path, spec.group);
  return path;
}

/**
 * Serves the host on the acceptor's own socket (transport/acceptor.ts): one connection per client, as
 * go-plugin <= 1.5.
 */
export async function listenDirect(acceptor: Server, spec: ListenSpec): Promise<Listening> {
  if (spec.network === 'unix') {
    return { network: 'unix', address: await listenOnPluginSocket(acceptor, spec), close: () => acceptor.close() };
  }
  for (const port of portsToTry(spec.minPort, spec.maxPort)) {
    // Loopback only: the plugin is never reachable from another machine.
    const bound = await listenAt(acceptor, { host: '127.0.0.1', port }).then(
      () => true,
      () => false,
    );
    if (bound) return { network: 'tcp', address: `127.0.0.1:${port}`, close: () => acceptor.close() };
  }
  throw cannotListen(`any TCP port from ${spec.minPort} to ${spec.maxPort} on 127.0.0.1`);
}

/**
 * Serves the host's one multiplexed connection (PLUGIN_MULTIPLEX_GRPC): the first connection becomes
 * a yamux session, handed to `onSession`; any later one is closed at once. Unix sockets only: the
 * private directory is what makes the first connection the host's (serve() refuses TCP).
 */
export async function listenMultiplexed(
  spec: Pick<ListenSpec, 'socketDir' | 'group'>,
  onSession: (session: YamuxSession) => void,
): Promise<Listening> {
  let session: YamuxSession | undefined;
  const server: Server = createServer((socket: Socket) => {
    // One host per plugin: whoever connects after it gets nothing.
    if (session !== undefined) {
      socket.destroy();
      return;
    }
    session = new YamuxSession(socket, 'server');
    onSession(session);
  });
  return {
    network: 'unix',
    address: await listenOnPluginSocket(server, spec),
    close: () => {
      session?.close();
      server.close();
    },
  };
}
