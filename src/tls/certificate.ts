import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import { GatehouseError } from '../errors.js';

/**
 * An ephemeral identity for one side of one plugin connection: a fresh ECDSA P-256 key and a
 * self-signed certificate for `localhost`, made in memory for a single launch.
 */
export interface EphemeralIdentity {
  /** DER of the certificate; the only part that ever leaves this process (as PEM or base64). */
  readonly certificateDer: Buffer;
  readonly certificatePem: string;
  /** PKCS#8 PEM of the private key, held only in memory and handed only to the TLS stack. */
  readonly privateKeyPem: string;
  readonly notAfter: Date;
}

/**
 * How long an ephemeral certificate stays valid. go-plugin uses 30 years; a stolen certificate and key
 * of ours are useless after this. Long enough for a plugin that runs as long as a server does;
 * a plugin that must outlive it is relaunched (or reattached with a fresh identity).
 */
export const CERTIFICATE_VALIDITY_DAYS = 90;
/** Tolerates a peer whose clock runs a little behind ours without widening the window much. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

type X509Module = typeof import('@peculiar/x509');
let x509Module: Promise<X509Module> | undefined;

/** Loaded on first use: importing it costs about 90 ms, which a plugin without mTLS should not pay. */
function loadX509(): Promise<X509Module> {
  x509Module ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    return x509;
  })();
  return x509Module;
}

export async function generateEphemeralIdentity(now: Date = new Date()): Promise<EphemeralIdentity> {
  const x509 = await loadX509();
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  // extractable only so the TLS stack can be given the key as PEM; it is never written anywhere.
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  const notAfter = new Date(now.getTime() + CERTIFICATE_VALIDITY_DAYS * DAY_MS);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    // 128 random bits: two launches never share a serial, so a peer cannot confuse them.
    serialNumber: '01' + Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex'),
    name: 'CN=localhost, O=gatehouse',
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      // Shaped like go-plugin's AutoMTLS certificate (a self-signed CA for localhost with both EKUs),
      // because Go's verifier, on the other side, treats the pinned certificate as its only root.
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyCertSign,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const certificateDer = Buffer.from(certificate.rawData);
  return {
    certificateDer,
    certificatePem: derToPem(certificateDer, 'CERTIFICATE'),
    privateKeyPem: derToPem(pkcs8, 'PRIVATE KEY'),
    notAfter,
  };
}

export function derToPem(der: Buffer, label: 'CERTIFICATE' | 'PRIVATE KEY'): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Parses a peer's certificate, turning the platform's error into ours. */
export function parseCertificate(der: Buffer): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (cause) {
    throw new GatehouseError('CERTIFICATE_INVALID', 'the peer certificate is not a valid X.509 certificate', { cause });
  }
}

/** SHA-256 of the DER, as the hex string audit records and error messages use. */
export function certificateFingerprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}
