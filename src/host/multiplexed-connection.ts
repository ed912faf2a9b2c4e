import { connect, type Socket } from 'node:net';
import { GatehouseError } from '../errors.js';
import { tcpEndpoint, type HandshakeLine } from '../transport/handshake.js';
import { openLocalBridge } from '../transport/local-bridge.js';
import { YamuxSession } from '../transport/yamux.js';

/** The host's one connection to a multiplexing plugin, and the bridge its main channel dials. */
export interface MultiplexedConnection {
  readonly session: YamuxSession;
  /** The host's own directory for this plugin's bridges (the main one and the broker's); see HostSocketDir. */
  readonly bridgeDir: string;
  /** Where the main channel connects: the bridge into a fresh yamux stream. */
  readonly target: { network: 'unix'; address: string };
  /** Rejects once the session ends, so that a launch fails at once instead of at its deadline. */
  readonly failure: Promise<never>;
  close(): Promise<void>;
}

/**
 * go-plugin >= 1.6's multiplexed mode (PLUGIN_MULTIPLEX_GRPC): one connection to the plugin, a yamux
 * session on it, and the main gRPC connection as its first stream. A plugin whose handshake line does
 * not say it multiplexes is refused, as go-plugin refuses it.
 */
export async function connectMultiplexed(
  handshake: Pick<HandshakeLine, 'network' | 'address' | 'multiplex'>,
  // Attack: bridges in the plugin's directory, which a plugin run as another user owns: it renamed their
  // directory aside and put one of its own there, and the host's channel dialled the socket it chose.
  bridgeDir: string,
  deadline: number,
): Promise<MultiplexedConnection> {
  if (handshake.multiplex !== true) {
    throw new GatehouseError(
      'MULTIPLEX_UNSUPPORTED',
      'the host asked for the multiplexed broker (PLUGIN_MULTIPLEX_GRPC) but the plugin does not support it ' +
        '(no "true" 7th field in its handshake line): build it with go-plugin >= 1.6, or launch without multiplexBroker',
    );
  }
  const socket = await connectSocket(handshake, deadline);
  const session = new YamuxSession(socket, 'client');
  const failure = new Promise<never>((_resolve, reject) =>
    session.once('close', (cause) =>
      reject(
        new GatehouseError(
          'MULTIPLEX_PROTOCOL_ERROR',
          `the plugin's multiplexed connection ended${cause ? `: ${cause.message}` : ''}; ` +
            'the plugin does not speak yamux as go-plugin >= 1.6 does (or it is hostile): check its build and its log',
          cause ? { cause } : undefined,
        ),
      ),
    ),
  );
  // Only a launch in progress waits for it; later, the session's end is the plugin's end.
  failure.catch(() => {});
  try {
    const main = await openLocalBridge(bridgeDir, async () => session.open());
    return {
      session,
      bridgeDir,
      target: { network: 'unix', address: main.path },
      failure,
      close: async () => {
        await main.close();
        session.close();
      },
    };
  } catch (error) {
    session.close();
    throw error;
  }
}

function connectSocket(handshake: Pick<HandshakeLine, 'network' | 'address'>, deadline: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(handshake.network === 'unix' ? { path: handshake.address } : tcpEndpoint(handshake.address));
    const timer = setTimeout(() => socket.destroy(new Error('timed out')), Math.max(0, deadline - Date.now()));
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (cause) => {
      clearTimeout(timer);
      reject(new GatehouseError('CONNECT_FAILED', `cannot connect to the plugin at ${handshake.address}: ${cause.message}`, { cause }));
    });
  });
}
