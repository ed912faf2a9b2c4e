import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { GatehouseError } from '../errors.js';
import * as der from './der.js';

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

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extendedKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** CN=localhost, O=gatehouse: issuer and subject alike, since the certificate is self-signed. */
const NAME = der.sequence(
  der.set(der.sequence(der.objectIdentifier(OID.commonName), der.utf8String('localhost'))),
  der.set(der.sequence(der.objectIdentifier(OID.organization), der.utf8String('gatehouse'))),
);

const extension = (oid: string, critical: boolean, value: Buffer): Buffer =>
  der.sequence(der.objectIdentifier(oid), ...(critical ? [der.boolean(true)] : []), der.octetString(value));

// Shaped like go-plugin's AutoMTLS certificate (a self-signed CA for localhost with both EKUs),
// because Go's verifier, on the other side, treats the pinned certificate as its only root.
const EXTENSIONS = der.explicit(
  3,
  der.sequence(
    extension(OID.basicConstraints, true, der.sequence(der.boolean(true))),
    // digitalSignature | keyEncipherment | keyCertSign: bits 0, 2 and 5 of the named bit string.
    extension(OID.keyUsage, true, der.tlv(0x03, Buffer.from([0x02, 0xa4]))),
    extension(OID.extendedKeyUsage, false, der.sequence(der.objectIdentifier(OID.serverAuth), der.objectIdentifier(OID.clientAuth))),
    extension(OID.subjectAltName, false, der.sequence(der.tlv(0x82, Buffer.from('localhost')))),
  ),
);

const SIGNATURE_ALGORITHM = der.sequence(der.objectIdentifier(OID.ecdsaWithSha256));

/**
 * Builds the certificate with node:crypto alone. The shape never varies, so a fixed DER template
 * replaces @peculiar/x509, whose import cost ~85 ms in every host and plugin process and whose
 * certificates took ~3 ms each (this takes ~0.2 ms); test/tls/certificate.test.ts checks the result
 * with OpenSSL's parser, and the interop tests with Go's.
 */
export function generateEphemeralIdentity(now: Date = new Date()): EphemeralIdentity {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const notAfter = new Date(now.getTime() + CERTIFICATE_VALIDITY_DAYS * DAY_MS);
  const tbs = der.sequence(
    der.explicit(0, der.unsignedInteger(Buffer.from([2]))), // X.509 v3
    // 128 random bits: two launches never share a serial, so a peer cannot confuse them.
    der.unsignedInteger(Buffer.concat([Buffer.from([0x01]), randomBytes(16)])),
    SIGNATURE_ALGORITHM,
    NAME,
    der.sequence(der.time(new Date(now.getTime() - CLOCK_SKEW_MS)), der.time(notAfter)),
    NAME,
    publicKey.export({ type: 'spki', format: 'der' }),
    EXTENSIONS,
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const certificateDer = der.sequence(tbs, SIGNATURE_ALGORITHM, der.bitString(signature));
  return {
    certificateDer,
    certificatePem: derToPem(certificateDer, 'CERTIFICATE'),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
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
