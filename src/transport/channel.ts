// grpc-js channels to a peer (the plugin, or a brokered service on either side): opened with our
// limits and the pinned name, and closed for certain once the peer has gone.
import * as grpc from '@grpc/grpc-js';
import { TLS_SERVER_NAME } from '../tls/pinning.js';
import type { HandshakeLine } from './handshake.js';
import { SocketTrackingCredentials } from './socket-tracking.js';

/** The HTTP/2 flow-control window of the connections to a peer: grpc-js channels and the lean client alike. */
export const DEFAULT_FLOW_CONTROL_WINDOW_BYTES = 1024 * 1024;

/** grpc-js target for the address in a handshake line (already validated as loopback or a path). */
export function grpcTarget(handshake: Pick<HandshakeLine, 'network' | 'address'>): string {
  if (handshake.network === 'unix') return `unix:${handshake.address}`;
  return handshake.address.startsWith('[') ? `ipv6:${handshake.address}` : `ipv4:${handshake.address}`;
}

/** The credentials of each open channel, which know its sockets; see closeAfterPeerGone. */
const channelSockets = new WeakMap<grpc.Channel, SocketTrackingCredentials>();

export function openChannel(
  target: string,
  credentials: grpc.ChannelCredentials,
  maxMessageBytes: number,
  extraOptions: grpc.ChannelOptions = {},
): grpc.Channel {
  const tracking = new SocketTrackingCredentials(credentials);
  const channel = new grpc.Channel(target, tracking, {
    // HTTP/2's 64 KiB default window stalls large values on a round trip per window; the caller may
    // still choose another (measured: +10% MB/s on 1 MiB values).
    'grpc-node.flow_control_window': DEFAULT_FLOW_CONTROL_WINDOW_BYTES,
    ...extraOptions,
    // Both certificates name localhost; the channel must verify that name whatever the address is.
    'grpc.ssl_target_name_override': TLS_SERVER_NAME,
    'grpc.default_authority': TLS_SERVER_NAME,
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  });
  channelSockets.set(channel, tracking);
  return channel;
}

/**
 * Closes the channel of a peer that has exited. It first lets the channel read what the peer sent
 * before it died (its last output, the end of the connection) for up to `maxWaitMs`, then destroys
 * whatever socket is still open: a graceful close alone leaks one when Node.js stops reading it.
 */
export async function closeAfterPeerGone(channel: grpc.Channel, maxWaitMs: number): Promise<void> {
  if (channel.getConnectivityState(false) === grpc.connectivityState.READY) {
    await new Promise<void>((resolve) => {
      channel.watchConnectivityState(grpc.connectivityState.READY, Date.now() + maxWaitMs, () => resolve());
    });
  }
  destroyChannel(channel);
}

/** Closes the channel and destroys its sockets now, without waiting for writes a dead peer will never take (H8). */
export function destroyChannel(channel: grpc.Channel): void {
  channelSockets.get(channel)?.destroySockets();
  channel.close();
}

/** A bare grpc-js client on a shared channel, for calls whose method definition we hold. */
export function clientOn(channel: grpc.Channel): grpc.Client {
  return new grpc.Client('unused', grpc.credentials.createInsecure(), { channelOverride: channel });
}

/** grpc-js's generic client for `definition` on a shared channel: what each grpcClient() hands its caller. */
export function serviceClientOn(channel: grpc.Channel, definition: grpc.ServiceDefinition, serviceName: string): InstanceType<grpc.ServiceClientConstructor> {
  const Constructor = grpc.makeGenericClientConstructor(definition, serviceName);
  return new Constructor('unused', grpc.credentials.createInsecure(), { channelOverride: channel });
}
