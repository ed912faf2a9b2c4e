import { timingSafeEqual } from 'node:crypto';
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

/** What node:tls needs to connect to a plugin pinned to its certificate. */
export interface PinnedTlsOptions {
  secureContext: tls.SecureContext;
  servername: string;
  checkServerIdentity: (hostname: string, presented: PeerCertificate) => Error | undefined;
}

/**
 * Host side: trust exactly the certificate the plugin announced in its handshake line. The pinned
 * certificate is the only root, and the presented leaf must be byte-for-byte that certificate, so a
 * process that took over the socket with any other certificate (even one a public CA issued) is refused.
 * These are the options for node:tls; {@link pinnedChannelCredentials} gives the same to grpc-js.
 */
export function pinnedTlsOptions(
  own: EphemeralIdentity,
  pluginCertificateDer: Buffer,
  onMismatch: (error: GatehouseError) => void = () => {},
): PinnedTlsOptions {
  assertTlsMinimum();
  const secureContext = tls.createSecureContext({
    ca: derToPem(pluginCertificateDer, 'CERTIFICATE'),
    cert: own.certificatePem,
    key: own.privateKeyPem,
    minVersion: 'TLSv1.2',
  });
  return {
    secureContext,
    servername: TLS_SERVER_NAME,
    checkServerIdentity: (_hostname: string, presented: PeerCertificate) => {
      if (sameCertificate(pluginCertificateDer, presented.raw)) return undefined;
      const error = new GatehouseError(
        'CERTIFICATE_MISMATCH',
        `the plugin presented certificate ${presented.raw ? certificateFingerprint(presented.raw) : '(none)'}, ` +
          `not the one it announced (${certificateFingerprint(pluginCertificateDer)})`,
      );
      onMismatch(error);
      return error;
    },
  };
}

/** {@link pinnedTlsOptions} as grpc-js channel credentials. */
export function pinnedChannelCredentials(
  own: EphemeralIdentity,
  pluginCertificateDer: Buffer,
  onMismatch: (error: GatehouseError) => void = () => {},
): grpc.ChannelCredentials {
  return channelCredentials(pinnedTlsOptions(own, pluginCertificateDer, onMismatch));
}

/** The same pin for grpc-js: one secure context and one identity check serve both clients of a plugin. */
export function channelCredentials({ secureContext, checkServerIdentity }: PinnedTlsOptions): grpc.ChannelCredentials {
  return grpc.credentials.createFromSecureContext(secureContext, { checkServerIdentity });
}

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
export function pinnedTlsServer(own: EphemeralIdentity, peerCertificateDer: Buffer, onPinned: (socket: tls.TLSSocket) => void): tls.Server {
  assertTlsMinimum();
  return tls.createServer(
    {
      ca: [],
      cert: own.certificatePem,
      key: own.privateKeyPem,
      minVersion: 'TLSv1.2',
      requestCert: true,
      // The chain check has no roots to succeed against; the exact-certificate check below replaces it.
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
    },
    (socket) => {
      // Attack: an impostor on the socket; also a client that did not agree to HTTP/2 (grpc-js's own
      // secure server refused those too, and our HTTP/2 must not meet a peer speaking something else).
      if (socket.alpnProtocol !== 'h2' || !sameCertificate(peerCertificateDer, socket.getPeerX509Certificate()?.raw)) {
        socket.destroy();
        return;
      }
      onPinned(socket);
    },
  );
}

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
