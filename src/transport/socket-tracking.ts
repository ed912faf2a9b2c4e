import type { Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';

type SecureConnector = ReturnType<grpc.ChannelCredentials['_createSecureConnector']>;

/**
 * Channel credentials that remember every socket their channel opens, so that the channel of a plugin
 * that has died can be torn down for certain. Node.js 20 can keep an HTTP/2-over-TLS socket open for
 * good when a write fails with EPIPE as the peer exits: TLSWrap keeps the failed write "in progress",
 * the HTTP/2 session stops reading and never sees the EOF, and grpc-js's graceful close waits on it.
 */
export class SocketTrackingCredentials extends grpc.ChannelCredentials {
  private readonly sockets = new Set<Socket>();

  constructor(private readonly inner: grpc.ChannelCredentials) {
    super();
  }

  /** Destroys the sockets still open: for a peer known to be gone, when a graceful close cannot finish. */
  destroySockets(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  _isSecure(): boolean {
    return this.inner._isSecure();
  }

  // Each channel keeps its own subchannels (and so its own sockets) rather than sharing a pooled one.
  _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(...args: Parameters<grpc.ChannelCredentials['_createSecureConnector']>): SecureConnector {
    const connector = this.inner._createSecureConnector(...args);
    const track = (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    };
    return {
      connect: async (socket) => {
        track(socket);
        const result = await connector.connect(socket);
        if (result.socket !== socket) track(result.socket);
        return result;
      },
      waitForReady: () => connector.waitForReady(),
      getCallCredentials: () => connector.getCallCredentials(),
      destroy: () => connector.destroy(),
    };
  }
}
