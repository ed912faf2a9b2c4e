import { timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { PeerCertificate } from 'node:tls';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import { certificateFingerprint, derToPem, type EphemeralIdentity } from './certificate.js';

/** The name both sides' certificates carry and the host dials, as go-plugin does. */
export const TLS_SERVER_NAME = 'localhost';

function sameCertificate(expectedDer: Buffer, presented: Buffer | undefined): boolean {
  return presented !== undefined && presented.length === expectedDer.length && timingSafeEqual(presented, expectedDer);
}

/**
 * Older TLS versions have known downgrade and cipher weaknesses; go-plugin also requires 1.2 at least.
 * grpc-js gives a server no per-credential minimum, so a process started with `--tls-min-v1.0` is refused.
 */
export function assertTlsMinimum(): void {
  if (tls.DEFAULT_MIN_VERSION !== 'TLSv1.2' && tls.DEFAULT_MIN_VERSION !== 'TLSv1.3') {
    throw new GatehouseError(
      'TLS_FAILED',
      `this Node.js process allows ${tls.DEFAULT_MIN_VERSION}; gatehouse requires TLS 1.2 or later`,
    );
  }
}

/**
 * Our side of a pinned TLS connection, as node:tls takes it. TLS 1.2 at least, and a process that allows
 * less is refused here, where every pinned context is made: older versions have known downgrade and
 * cipher weaknesses (assertTlsMinimum). `trust` is the trust store: empty where our own exact-certificate
 * check is the whole pin (a CA would make Node 20 build its root store first), the peer's certificate for
 * a grpc-js channel, which runs no check of ours.
 */
function ownTlsOptions(own: EphemeralIdentity, trust: string | string[]): tls.SecureContextOptions {
  assertTlsMinimum();
  return { ca: trust, cert: own.certificatePem, key: own.privateKeyPem, minVersion: 'TLSv1.2' };
}

/**
 * What the pin admits, judged on a finished handshake (which proved the peer holds the key of the
 * certificate it presented): exactly `peerCertificateDer`, byte for byte, and agreement to HTTP/2, so that
 * our HTTP/2 never meets a peer speaking something else. Undefined when admitted, else why not.
 */
function pinRefusal(socket: tls.TLSSocket, peerCertificateDer: Buffer): 'certificate' | 'alpn' | undefined {
  if (!sameCertificate(peerCertificateDer, socket.getPeerX509Certificate()?.raw)) return 'certificate';
  return socket.alpnProtocol === 'h2' ? undefined : 'alpn';
}

function mismatchError(pluginCertificateDer: Buffer, presented: Buffer | undefined): GatehouseError {
  return new GatehouseError(
    'CERTIFICATE_MISMATCH',
    `the plugin presented certificate ${presented ? certificateFingerprint(presented) : '(none)'}, ` +
      `not the one it announced (${certificateFingerprint(pluginCertificateDer)})`,
  );
}

/**
 * The host's pin in grpc-js's form, for a grpc-js channel (`grpcClient()`, `channelOptions`, brokered
 * dials), which runs no check of ours before its HTTP/2 starts: the announced certificate is the only
 * root, and the presented leaf must be byte for byte that certificate, so a process that took over the
 * socket with any other certificate (even one a public CA issued) is refused during the handshake.
 */
export function pinnedChannelCredentials(
  own: EphemeralIdentity,
  pluginCertificateDer: Buffer,
  onMismatch: (error: GatehouseError) => void = () => {},
): grpc.ChannelCredentials {
  const secureContext = tls.createSecureContext(ownTlsOptions(own, derToPem(pluginCertificateDer, 'CERTIFICATE')));
  return grpc.credentials.createFromSecureContext(secureContext, {
    checkServerIdentity: (_hostname: string, presented: PeerCertificate) => {
      if (sameCertificate(pluginCertificateDer, presented.raw)) return undefined;
      const error = mismatchError(pluginCertificateDer, presented.raw);
      onMismatch(error);
      return error;
    },
  });
}

/** A unix socket path or a host and port, as node:net takes them. */
export type Endpoint = { path: string } | { host: string; port: number };

/** The host's pinned connections to one plugin, for a client that waits for `ready` before its first HTTP/2 byte. */
export interface PinnedConnector {
  connect(where: Endpoint): tls.TLSSocket;
  /** Resolves once the socket's peer proved the announced certificate; otherwise rejects, the socket destroyed. */
  ready(socket: Duplex): Promise<void>;
}

/** The host's half of its pinned connections to one plugin: its own identity, and a TLS context for it. */
export interface HostTls {
  readonly own: EphemeralIdentity;
  readonly context: tls.SecureContext;
}

/**
 * The host's TLS context, with an empty trust store (see {@link pinnedConnector}). It needs nothing from
 * the plugin, so launch() makes it while the plugin starts, not after its handshake line: ~2 ms off
 * every launch's critical path (docs/benchmarks.md).
 */
export function hostTls(own: EphemeralIdentity): HostTls {
  return { own, context: tls.createSecureContext(ownTlsOptions(own, [])) };
}

/**
 * Host side, for our own HTTP/2 client: trust exactly the certificate the plugin announced in its
 * handshake line, checked byte for byte on the finished handshake (which proved the plugin holds its
 * key) before a byte of HTTP/2 is written or read, so a process that took over the socket with any
 * other certificate (even one a public CA issued) gets nothing. The trust store is empty, as in
 * {@link pinnedTlsServer} and for the same reason: a host's first launch does not build Node 20's root
 * store (~23 ms measured) for roots it never trusts.
 */
export function pinnedConnector(
  host: HostTls,
  pluginCertificateDer: Buffer,
  onMismatch: (error: GatehouseError) => void = () => {},
): PinnedConnector {
  const verdicts = new WeakMap<Duplex, Promise<void>>();
  return {
    connect: (where) => {
      const socket = tls.connect({
        ...where,
        secureContext: host.context,
        servername: TLS_SERVER_NAME,
        // The chain check has no roots to succeed against; the exact-certificate check replaces it.
        rejectUnauthorized: false,
        ALPNProtocols: ['h2'],
      });
      const verdict = pinnedHandshake(socket, pluginCertificateDer, onMismatch);
      // Reported to whoever asks ready(); a connection nobody asks about must not crash the host.
      verdict.catch(() => {});
      verdicts.set(socket, verdict);
      return socket;
    },
    ready: (socket) => verdicts.get(socket) ?? Promise.reject(new GatehouseError('TLS_FAILED', 'not a connection this connector opened')),
  };
}

/** The verdict on one connection of {@link pinnedConnector}, given once its handshake is done. */
function pinnedHandshake(socket: tls.TLSSocket, pluginCertificateDer: Buffer, onMismatch: (error: GatehouseError) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const failed = (error: Error): void => {
      socket.off('secureConnect', secured);
      socket.off('error', failed);
      socket.off('close', closed);
      reject(error);
    };
    const closed = (): void => failed(new GatehouseError('CONNECT_FAILED', 'the plugin closed the connection during the TLS handshake'));
    const secured = (): void => {
      socket.off('error', failed);
      socket.off('close', closed);
      // Attack: an impostor on the plugin's socket, with a certificate of its own or none.
      const refusal = pinRefusal(socket, pluginCertificateDer);
      if (refusal === undefined) return resolve();
      if (refusal === 'alpn') {
        socket.destroy();
        return reject(new GatehouseError('TLS_FAILED', 'the plugin did not agree to HTTP/2 (ALPN h2) on its TLS connection'));
      }
      const error = mismatchError(pluginCertificateDer, socket.getPeerX509Certificate()?.raw);
      onMismatch(error);
      socket.destroy();
      reject(error);
    };
    socket.once('secureConnect', secured);
    socket.once('error', failed);
    socket.once('close', closed);
  });
}

/**
 * Connections one pinned server holds at once, those still in their handshake included. Its one peer needs a
 * few (the main connection, a channel per set of channel options, a reconnect); 128 leaves room to spare.
 */
export const MAX_PINNED_CONNECTIONS = 128;
/** A peer's handshake takes milliseconds; one that has not finished by then never will. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Server side (a plugin's server, and a service either side serves through the broker): TLS that asks
 * for a client certificate and admits exactly the peer's, byte for byte, once the handshake has proved
 * the peer holds its key; only then does `onPinned` get the socket. Anyone else (another local process
 * with a certificate of its own, with none, or one issued under the peer's) is cut at the end of the
 * handshake, before a byte of HTTP/2 is read from it or written to it.
 *
 * The trust store is left empty (`ca: []`) because the pin is the whole check: a context given a CA
 * makes Node.js 20 first build its bundled root-certificate store, ~23 ms of a TypeScript plugin's start
 * measured here (docs/benchmarks.md), for roots this server never trusts. OpenSSL still verifies the
 * client's CertificateVerify signature, so the certificate cannot be replayed without its key.
 */
export function pinnedTlsServer(
  own: EphemeralIdentity,
  peerCertificateDer: Buffer,
  onPinned: (socket: tls.TLSSocket) => void,
  onCertificateRefused?: (error: Error) => void,
): tls.Server {
  const server = tls.createServer(
    {
      ...ownTlsOptions(own, []),
      requestCert: true,
      // The chain check has no roots to succeed against; the exact-certificate check below replaces it.
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      // Attack: connections that never finish their handshake, each holding memory until Node's default (120 s).
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    },
    (socket) => {
      // Attack: an impostor on the socket, with a certificate of its own or none; a client that did not
      // agree to h2 is cut too, as grpc-js's own secure server cut it.
      if (pinRefusal(socket, peerCertificateDer) !== undefined) {
        socket.destroy();
        return;
      }
      // Authorized by the pin: what grpc-js's getAuthContext() reads, so handlers still see the host's certificate.
      socket.authorized = true;
      onPinned(socket);
    },
  );
  // Attack: any local user (over TCP; a socket group's members) opening connections that never finish their
  // handshake, ~80 KiB of memory and a descriptor each, without end (4,000 took 320 MiB of a plugin's memory).
  server.maxConnections = MAX_PINNED_CONNECTIONS;
  if (onCertificateRefused !== undefined) {
    // The socket is destroyed either way (Node does it for a failed handshake); this only says why.
    server.on('tlsClientError', (error: NodeJS.ErrnoException) => {
      if (PEER_REFUSED_CERTIFICATE.test(error.code ?? '')) onCertificateRefused(error);
    });
  }
  return server;
}

/**
 * The TLS alerts a client sends when it does not accept our certificate (OpenSSL's names for alerts 42-46,
 * 48): the peer dialed us, and then refused the certificate it was given to trust.
 */
const PEER_REFUSED_CERTIFICATE = /^ERR_SSL_(?:SSLV3|TLSV1)_ALERT_(?:BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|CERTIFICATE_\w+|UNKNOWN_CA)$/;

/**
 * Names a failed TLS connection to the plugin. With only the announced certificate trusted, any local
 * verification failure means the server presented another certificate; a TLS alert means the plugin
 * refused ours. Returns undefined when the failure was not about TLS.
 */
export function classifyTlsFailure(details: string): GatehouseError | undefined {
  if (/alert/i.test(details)) {
    return new GatehouseError('TLS_FAILED', `the plugin refused the TLS connection: ${details}`);
  }
  if (/certificate|self[- ]signed/i.test(details)) {
    return new GatehouseError(
      'CERTIFICATE_MISMATCH',
      `the plugin's server does not present the certificate from its handshake line: ${details}`,
    );
  }
  return undefined;
}
