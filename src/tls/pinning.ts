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
 * Plugin side: require a client certificate and trust only the host's. The host's certificate is
 * self-signed with a key that exists only in the host's memory, so TLS verification alone already
 * admits nothing the host did not issue; `pinnedClientInterceptor` adds the exact-certificate check.
 */
export function pinnedServerCredentials(own: EphemeralIdentity, hostCertificatePem: string): grpc.ServerCredentials {
  assertTlsMinimum();
  return grpc.ServerCredentials.createSsl(
    Buffer.from(hostCertificatePem),
    [{ private_key: Buffer.from(own.privateKeyPem), cert_chain: Buffer.from(own.certificatePem) }],
    true,
  );
}

/** grpc-js's call for a request, whose HTTP/2 session is one TLS connection: not public API. */
interface CallWithSession {
  stream?: { session?: object };
}

/**
 * Refuses, before any handler runs, a call whose TLS peer is not exactly the host's certificate.
 * The verdict is kept per HTTP/2 session: one TLS connection has one peer (HTTP/2 forbids
 * renegotiation), and reading the peer certificate on every call cost a third of a busy plugin's
 * CPU. Where grpc-js does not expose the session, every call is checked as before.
 */
export function pinnedClientInterceptor(hostCertificateDer: Buffer): grpc.ServerInterceptor {
  const verdicts = new WeakMap<object, boolean>();
  return (methodDescriptor, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        const session = (call as CallWithSession).stream?.session;
        let pinned = session === undefined ? undefined : verdicts.get(session);
        if (pinned === undefined) {
          pinned = sameCertificate(hostCertificateDer, call.getAuthContext().sslPeerCertificate?.raw);
          if (session !== undefined) verdicts.set(session, pinned);
        }
        if (!pinned) {
          call.sendStatus({
            code: grpc.status.UNAUTHENTICATED,
            details: `${methodDescriptor.path}: client certificate is not the pinned host certificate`,
            metadata: new grpc.Metadata(),
          });
          return;
        }
        next();
      },
    });
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
