import { X509Certificate, createPrivateKey } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import test from 'ava';
import {
  CERTIFICATE_VALIDITY_DAYS,
  certificateFingerprint,
  generateEphemeralIdentity,
} from '../../src/tls/certificate.js';

test('ephemeral identity: a fresh ECDSA P-256 key and a self-signed certificate for localhost', async (t) => {
  const now = new Date('2026-01-01T00:00:00Z');
  const identity = generateEphemeralIdentity(now);
  const certificate = new X509Certificate(identity.certificateDer);
  t.is(certificate.publicKey.asymmetricKeyType, 'ec');
  t.is(certificate.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.true(certificate.checkIssued(certificate), 'self-signed');
  t.true(certificate.verify(certificate.publicKey));
  t.regex(certificate.subjectAltName ?? '', /DNS:localhost/);
  t.true(certificate.checkPrivateKey(createPrivateKey(identity.privateKeyPem)));
  // Shaped like go-plugin's: a CA (Go trusts the pinned certificate as a root) for server and client use.
  t.true(certificate.ca);
  t.deepEqual([...(certificate.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  t.is(certificate.subject, 'CN=localhost\nO=gatehouse');
  t.is(certificate.issuer, certificate.subject);
  t.true(certificate.checkHost('localhost') === 'localhost');
});

test('ephemeral identity: OpenSSL reads every extension as go-plugin writes them', async (t) => {
  const { certificatePem } = generateEphemeralIdentity(new Date('2026-01-01T00:00:00Z'));
  const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: certificatePem }).toString();
  t.regex(text, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
  t.regex(text, /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment, Certificate Sign/);
  t.regex(text, /X509v3 Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/);
  t.regex(text, /Not Before: Dec 31 23:55:00 2025 GMT/);
  t.regex(text, /Not After : Apr {2}1 00:00:00 2026 GMT/);
  t.regex(text, /ecdsa-with-SHA256/);
});

test('ephemeral identity: validity is bounded (days, not go-plugin\'s 30 years)', async (t) => {
  const now = new Date('2026-01-01T00:00:00Z');
  const certificate = new X509Certificate(generateEphemeralIdentity(now).certificateDer);
  const days = (Date.parse(certificate.validTo) - now.getTime()) / 86_400_000;
  t.true(Math.abs(days - CERTIFICATE_VALIDITY_DAYS) < 1, `valid for ${days} days`);
  t.true(Date.parse(certificate.validFrom) <= now.getTime());
});

test('ephemeral identity: every launch gets a different key and serial', async (t) => {
  const [a, b] = [generateEphemeralIdentity(), generateEphemeralIdentity()];
  t.not(certificateFingerprint(a!.certificateDer), certificateFingerprint(b!.certificateDer));
  t.not(new X509Certificate(a!.certificateDer).serialNumber, new X509Certificate(b!.certificateDer).serialNumber);
  t.not(new X509Certificate(a!.certificateDer).publicKey.export({ format: 'der', type: 'spki' }).toString('hex'),
    new X509Certificate(b!.certificateDer).publicKey.export({ format: 'der', type: 'spki' }).toString('hex'));
});

test('ephemeral identity: the PEM certificate carries no private key', async (t) => {
  const identity = generateEphemeralIdentity();
  t.notRegex(identity.certificatePem, /PRIVATE KEY/);
});
