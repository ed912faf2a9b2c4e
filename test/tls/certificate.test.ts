import { X509Certificate, createPrivateKey } from 'node:crypto';
import test from 'ava';
import {
  CERTIFICATE_VALIDITY_DAYS,
  certificateFingerprint,
  generateEphemeralIdentity,
} from '../../src/tls/certificate.js';

test('ephemeral identity: a fresh ECDSA P-256 key and a self-signed certificate for localhost', async (t) => {
  const now = new Date('2026-01-01T00:00:00Z');
  const identity = await generateEphemeralIdentity(now);
  const certificate = new X509Certificate(identity.certificateDer);
  t.is(certificate.publicKey.asymmetricKeyType, 'ec');
  t.is(certificate.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.true(certificate.checkIssued(certificate), 'self-signed');
  t.true(certificate.verify(certificate.publicKey));
  t.regex(certificate.subjectAltName ?? '', /DNS:localhost/);
  t.true(certificate.checkPrivateKey(createPrivateKey(identity.privateKeyPem)));
});

test('ephemeral identity: validity is bounded (days, not go-plugin\'s 30 years)', async (t) => {
  const now = new Date('2026-01-01T00:00:00Z');
  const certificate = new X509Certificate((await generateEphemeralIdentity(now)).certificateDer);
  const days = (Date.parse(certificate.validTo) - now.getTime()) / 86_400_000;
  t.true(Math.abs(days - CERTIFICATE_VALIDITY_DAYS) < 1, `valid for ${days} days`);
  t.true(Date.parse(certificate.validFrom) <= now.getTime());
});

test('ephemeral identity: every launch gets a different key and serial', async (t) => {
  const [a, b] = await Promise.all([generateEphemeralIdentity(), generateEphemeralIdentity()]);
  t.not(certificateFingerprint(a!.certificateDer), certificateFingerprint(b!.certificateDer));
  t.not(new X509Certificate(a!.certificateDer).serialNumber, new X509Certificate(b!.certificateDer).serialNumber);
  t.not(new X509Certificate(a!.certificateDer).publicKey.export({ format: 'der', type: 'spki' }).toString('hex'),
    new X509Certificate(b!.certificateDer).publicKey.export({ format: 'der', type: 'spki' }).toString('hex'));
});

test('ephemeral identity: the PEM certificate carries no private key', async (t) => {
  const identity = await generateEphemeralIdentity();
  t.notRegex(identity.certificatePem, /PRIVATE KEY/);
});
