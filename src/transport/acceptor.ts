import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { EphemeralIdentity } from '../tls/certificate.js';
import { GatehouseError } from '../errors.js';
import { pinnedTlsServer, type Endpoint } from '../tls/pinning.js';
import { MAX_UNIX_SOCKET_PATH_BYTES } from './handshake.js';
import { MAX_PEER_CONCURRENT_STREAMS } from './limits.js';

/** Both sides' certificates, as a pinned connection uses them; undefined only for plaintext asked for by name. */
export interface PeerTls {
  own: EphemeralIdentity;
  peerCertificateDer: Buffer;
}

/**
 * Every gRPC server of ours that a peer reaches (a plugin's main server, the services either side serves
 * through the broker): the caller's grpc-js options, messages bounded to `maxMessageBytes` either way, and
 * with `capStreams` (a host's servers, which a plugin dials) at most MAX_PEER_CONCURRENT_STREAMS streams open
 * at once per connection unless the caller names its own `grpc.max_concurrent_streams`. A plugin's servers
 * face its own host, which may hold more long-lived streams than that (go-plugin hosts have no such limit).
 */
export function peerServer(options: grpc.ServerOptions, maxMessageBytes: number, capStreams: boolean): grpc.Server {
  return new grpc.Server({
    // Attack: a plugin opening streams it never ends, each a call's state in the host's memory for a few bytes of
    // HEADERS (grpc-js sets no limit: 300,000 streams on one connection grew a host's brokered server to 1.6 GiB).
    ...(capStreams ? { 'grpc.max_concurrent_streams': MAX_PEER_CONCURRENT_STREAMS } : {}),
    ...options,
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  });
}

/**
 * Where every gRPC server of ours takes its connections: a plugin's main server and the services either
 * side serves through the broker, on a socket (`listenAt`) or as multiplexed streams (emit 'connection').
 * grpc-js runs without TLS of its own and gets a connection only once pinnedTlsServer has admitted the
 * peer's exact certificate, so the pin holds the same way on every path into a server.
 * `onCertificateRefused` hears of a peer that connected and then refused our certificate.
 */
export function serverAcceptor(server: grpc.Server, peer: PeerTls | undefined, onCertificateRefused?: (error: Error) => void): net.Server {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const inject = (connection: Duplex): void => injector.injectConnection(connection);
  return peer ? pinnedTlsServer(peer.own, peer.peerCertificateDer, inject, onCertificateRefused) : net.createServer(inject);
}

/**
 * Listens on a unix socket path or a loopback port; rejects with Node's error when it cannot, and with
 * CONNECT_FAILED for a socket path longer than a socket address holds.
 */
export function listenAt(server: net.Server, where: Endpoint): Promise<void> {
  // Node cuts a longer path to fit sun_path and binds that: a socket outside the private directory,
  // in whichever directory the cut path names, with the process's umask.
  if ('path' in where && Buffer.byteLength(where.path) > MAX_UNIX_SOCKET_PATH_BYTES) {
    return Promise.reject(
      new GatehouseError('CONNECT_FAILED', `cannot listen on ${where.path}: a unix socket path is at most ${MAX_UNIX_SOCKET_PATH_BYTES} bytes; use a shorter directory (PLUGIN_UNIX_SOCKET_DIR, TMPDIR)`),
    );
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
