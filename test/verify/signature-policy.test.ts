import test from 'ava';
import { createHash } from 'node:crypto';
import { formatManifest, type Manifest } from '../../src/verify/manifest.js';
import { generateKeyPair } from '../../src/verify/minisign-key.js';
import { signBytes } from '../../src/verify/minisign-signature.js';
import { MemoryRollbackState } from '../../src/verify/rollback-state.js';
import { signManifest } from '../../src/verify/sign-manifest.js';
import { verifyManifest } from '../../src/verify/signature-policy.js';

const [alice, bob, carol] = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
const outsider = generateKeyPair();
const trustedKeys = [alice.publicKey, bob.publicKey, carol.publicKey];
const now = new Date('2030-01-01T00:00:00Z');

function manifestBytes(version: number, expires = '2030-06-01T00:00:00Z'): Buffer {
  const manifest: Manifest = {
    schema: 'gatehouse.manifest/v1',
    version,
    expires,
    plugins: [{ name: 'kv', path: 'kv', sha256: 'ab'.repeat(32), size: 1 }],
  };
  return Buffer.from(formatManifest(manifest));
}
const bytes = manifestBytes(5);

test('a manifest signed by a trusted key is accepted, with the verified trusted comment and the digest of its bytes', async (t) => {
  const verified = await verifyManifest(bytes, [signManifest(bytes, alice.secretKey, { trustedComment: 'release 5' })], { trustedKeys, now });
  t.is(verified.manifest.version, 5);
  t.is(verified.sha256, createHash('sha256').update(bytes).digest('hex'));
  t.deepEqual(verified.signatures, [{ keyId: alice.publicKey.keyId, algorithm: 'ED', trustedComment: 'release 5' }]);
});

test('a manifest with no signature is THRESHOLD_NOT_MET', async (t) => {
  await t.throwsAsync(verifyManifest(bytes, [], { trustedKeys, now }), { code: 'THRESHOLD_NOT_MET' });
});

test('a manifest signed only by a key that is not trusted is SIGNATURE_UNTRUSTED', async (t) => {
  await t.throwsAsync(verifyManifest(bytes, [signManifest(bytes, outsider.secretKey)], { trustedKeys, now }), { code: 'SIGNATURE_UNTRUSTED' });
});

test('manifest bytes changed after signing are SIGNATURE_INVALID', async (t) => {
  const signature = signManifest(bytes, alice.secretKey);
  await t.throwsAsync(verifyManifest(manifestBytes(6), [signature], { trustedKeys, now }), { code: 'SIGNATURE_INVALID' });
});

test('with threshold 2, signatures by two distinct trusted keys are accepted', async (t) => {
  const verified = await verifyManifest(bytes, [signManifest(bytes, alice.secretKey), signManifest(bytes, carol.secretKey)], { trustedKeys, threshold: 2, now });
  t.deepEqual(
    verified.signatures.map((s) => s.keyId),
    [alice.publicKey.keyId, carol.publicKey.keyId],
  );
});

test('with threshold 2, two signatures by the same key count once: THRESHOLD_NOT_MET', async (t) => {
  const twice = [signManifest(bytes, alice.secretKey, { trustedComment: 'one' }), signManifest(bytes, alice.secretKey, { trustedComment: 'two' })];
  await t.throwsAsync(verifyManifest(bytes, twice, { trustedKeys, threshold: 2, now }), { code: 'THRESHOLD_NOT_MET', message: /signed by 1 of the 2/ });
});

test('with threshold 2, one good signature and one by an outsider is THRESHOLD_NOT_MET, saying why', async (t) => {
  const signatures = [signManifest(bytes, alice.secretKey), signManifest(bytes, outsider.secretKey)];
  await t.throwsAsync(verifyManifest(bytes, signatures, { trustedKeys, threshold: 2, now }), {
    code: 'THRESHOLD_NOT_MET',
    message: new RegExp(`key ${outsider.publicKey.keyId}, which is not trusted`),
  });
});

test('a bad extra signature does not spoil a threshold that is met', async (t) => {
  const signatures = ['garbage', signManifest(bytes, bob.secretKey)];
  t.is((await verifyManifest(bytes, signatures, { trustedKeys, now })).signatures.length, 1);
});

test('one key trusted under two key ids is one signer, so a threshold of 2 cannot be met with it alone', async (t) => {
  const alias = { ...alice.publicKey, keyId: 'FFFFFFFFFFFFFFFF' };
  await t.throwsAsync(verifyManifest(bytes, [], { trustedKeys: [alice.publicKey, alias], threshold: 2, now }), { code: 'INVALID_OPTIONS' });
});

for (const threshold of [0, 1.5, 4]) {
  test(`a threshold of ${threshold} with three trusted keys is INVALID_OPTIONS`, async (t) => {
    await t.throwsAsync(verifyManifest(bytes, [signManifest(bytes, alice.secretKey)], { trustedKeys, threshold, now }), { code: 'INVALID_OPTIONS' });
  });
}

test('a manifest is refused from the instant it expires (MANIFEST_EXPIRED), and accepted just before', async (t) => {
  const signatures = [signManifest(bytes, alice.secretKey)];
  const expired = await t.throwsAsync(verifyManifest(bytes, signatures, { trustedKeys, now: new Date('2030-06-01T00:00:00Z') }), { code: 'MANIFEST_EXPIRED' });
  // The clock it was judged by: after a clock jump, the operator must see that the clock is what is wrong.
  t.regex(expired?.message ?? '', /expired at 2030-06-01T00:00:00Z \(it is 2030-06-01T00:00:00\.000Z by this host's clock; if that is wrong, correct the clock\)/);
  await t.notThrowsAsync(verifyManifest(bytes, signatures, { trustedKeys, now: new Date('2030-05-31T23:59:59.999Z') }));
});

test('with state, a version lower than the highest accepted is MANIFEST_ROLLBACK; the same or higher is accepted and raises it', async (t) => {
  const state = new MemoryRollbackState();
  const at = async (version: number) => {
    const signed = manifestBytes(version);
    return verifyManifest(signed, [signManifest(signed, alice.secretKey)], { trustedKeys, now, state });
  };
  await at(5);
  await t.throwsAsync(at(4), { code: 'MANIFEST_ROLLBACK', message: /older than version 5, already accepted: .*install the current release again, or have its contents signed as version 6/ });
  await t.notThrowsAsync(at(5));
  await at(9);
  t.is(state.highestVersion(), 9);
  await t.throwsAsync(at(8), { code: 'MANIFEST_ROLLBACK' });
});

test('a manifest that fails verification does not raise the rollback state', async (t) => {
  const state = new MemoryRollbackState();
  const expired = manifestBytes(9, '2029-12-31T00:00:00Z');
  await t.throwsAsync(verifyManifest(expired, [signManifest(expired, alice.secretKey)], { trustedKeys, now, state }), { code: 'MANIFEST_EXPIRED' });
  t.is(state.highestVersion(), undefined);
});

test('unsigned bytes never reach the manifest parser; signed bytes that are no manifest are MANIFEST_INVALID', async (t) => {
  const junk = Buffer.from('{"not": "a manifest"}');
  await t.throwsAsync(verifyManifest(junk, [signManifest(bytes, alice.secretKey)], { trustedKeys, now }), { code: 'SIGNATURE_INVALID' });
  await t.throwsAsync(verifyManifest(junk, [signBytes(junk, alice.secretKey)], { trustedKeys, now }), { code: 'MANIFEST_INVALID' });
});

test('manifest bytes over 1 MiB are MANIFEST_TOO_LARGE before any signature is checked', async (t) => {
  await t.throwsAsync(verifyManifest(Buffer.alloc(1024 * 1024 + 1, 0x20), [], { trustedKeys, now }), { code: 'MANIFEST_TOO_LARGE' });
});

test('signManifest refuses to sign bytes that are not a valid manifest, and by default signs the version into the trusted comment', async (t) => {
  t.throws(() => signManifest(Buffer.from('{}'), alice.secretKey), { code: 'MANIFEST_INVALID' });
  const verified = await verifyManifest(bytes, [signManifest(bytes, alice.secretKey)], { trustedKeys, now });
  t.regex(verified.signatures[0]?.trustedComment ?? '', /^timestamp:\d+\tgatehouse manifest version:5$/);
});
