import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { EphemeralIdentity } from '../tls/certificate.js';
import { pinnedTlsServer, type Endpoint } from '../tls/pinning.js';

/** Both sides' certificates, as a pinned connection uses them; undefined only for plaintext asked for by name. */
export interface PeerTls {
  own: EphemeralIdentity;
  peerCertificateDer: Buffer;
}

/**
 * Where every gRPC server of ours takes its connections: a plugin's main server and the services either
 * side serves through the broker, on a socket (`listenAt`) or as multiplexed streams (emit 'connection').
 * grpc-js runs without TLS of its own and gets a connection only once pinnedTlsServer has admitted the
 * peer's exact certificate, so the pin holds the same way on every path into a server.
 */
export function serverAcceptor(server: grpc.Server, peer: PeerTls | undefined): net.Server {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const inject = (connection: Duplex): void => injector.injectConnection(connection);
  return peer ? pinnedTlsServer(peer.own, peer.peerCertificateDer, inject) : net.createServer(inject);
}

/** Listens on a unix socket path or a loopback port; rejects with Node's error when it cannot. */
export function listenAt(server: net.Server, where: Endpoint): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
