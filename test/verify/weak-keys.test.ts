import test from 'ava';
import fc from 'fast-check';
import { formatManifest } from '../../src/verify/manifest.js';
import { formatPublicKey, generateKeyPair, parsePublicKey, type MinisignPublicKey } from '../../src/verify/minisign-key.js';
import { formatSignature, parseSignature, signBytes, verifySignature } from '../../src/verify/minisign-signature.js';
import { verifyManifest } from '../../src/verify/signature-policy.js';
import { loadTrustedKeys } from '../../src/verify/trusted-keys.js';
import { tempDir, writeFileWithMode } from '../discover/temp-dir.js';

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
/** The y coordinate of two of the four points of order 8 (libsodium's blacklist); the other two have y = p - Y8. */
const Y8 = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n;
const now = new Date('2030-01-01T00:00:00Z');
const manifest = Buffer.from(
  formatManifest({ schema: 'gatehouse.manifest/v1', version: 1, expires: '2031-01-01T00:00:00Z', plugins: [{ name: 'kv', path: 'kv', sha256: 'ab'.repeat(32), size: 1 }] }),
);

function encode(y: bigint, negative: boolean): Buffer {
  const bytes = Buffer.alloc(32);
  for (let i = 0, v = y; i < 32; i++, v >>= 8n) bytes[i] = Number(v & 0xffn);
  if (negative) bytes[31] = (bytes[31] ?? 0) | 0x80;
  return bytes;
}

function keyText(point: Buffer, keyId = '0123456789ABCDEF'): string {
  // Written byte by byte, as an attacker would: formatPublicKey does no checking of its own to rely on.
  const bytes = Buffer.concat([Buffer.from('Ed'), Buffer.from(keyId, 'hex').reverse(), point]);
  return `untrusted comment: minisign public key ${keyId}\n${bytes.toString('base64')}\n`;
}

/** R = identity, S = 0: OpenSSL accepts it over any message for a key of small order. */
function forgedSignature(keyId: string): string {
  const signature = Buffer.concat([encode(1n, false), Buffer.alloc(32)]);
  return formatSignature({ untrustedComment: 'x', algorithm: 'ED', keyId, signature, claimedTrustedComment: 'version:1', globalSignature: signature });
}

const identityKey: MinisignPublicKey = { keyId: '0123456789ABCDEF', publicKey: encode(1n, false) };

/** The 8 points of small order, and the 6 other encodings that mean one of them (libsodium masks the sign bit). */
const smallOrder = [0n, 1n, Y8, P - Y8, P - 1n].flatMap((y) => [false, true].map((negative) => ({ y, negative })));
const canonicalSmallOrder = smallOrder.filter(({ y, negative }) => !(negative && (y === 1n || y === P - 1n)));
const twins = [...smallOrder.filter((point) => !canonicalSmallOrder.includes(point)), ...[P, P + 1n].flatMap((y) => [{ y, negative: false }, { y, negative: true }])];

test('a trusted key file holding the identity point is KEY_INVALID, so R = identity, S = 0 never passes for its signature', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'vendor.pub', keyText(identityKey.publicKey), 0o644);
  await t.throwsAsync(loadTrustedKeys(dir), { code: 'KEY_INVALID', message: /vendor\.pub.*small order/ });
  // A key object made without the parser (a library caller's own list) is refused when it is used.
  await t.throwsAsync(verifyManifest(manifest, [forgedSignature(identityKey.keyId)], { trustedKeys: [identityKey], now }), { code: 'KEY_INVALID' });
});

test('a small-order key never counts toward the threshold', async (t) => {
  const alice = generateKeyPair();
  const policy = { trustedKeys: [alice.publicKey, identityKey], threshold: 2, now };
  const signatures = [signBytes(manifest, alice.secretKey), forgedSignature(identityKey.keyId)];
  await t.throwsAsync(verifyManifest(manifest, signatures, policy), { code: 'THRESHOLD_NOT_MET', message: /1 of the 2/ });
});

test('table: the 8 small-order points are refused as small order, the 6 other spellings of them as not canonical', (t) => {
  t.is(canonicalSmallOrder.length, 8);
  t.is(twins.length, 6);
  for (const { y, negative } of canonicalSmallOrder) {
    t.throws(() => parsePublicKey(keyText(encode(y, negative))), { code: 'KEY_INVALID', message: /small order/ }, `y = ${y}, negative = ${negative}`);
  }
  for (const { y, negative } of twins) {
    t.throws(() => parsePublicKey(keyText(encode(y, negative))), { code: 'KEY_INVALID', message: /not canonical/ }, `y = ${y}, negative = ${negative}`);
  }
});

test('property: every encoding with y >= p is refused as not canonical', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 18 }), fc.boolean(), (offset, negative) => {
      t.throws(() => parsePublicKey(keyText(encode(P + BigInt(offset), negative))), { code: 'KEY_INVALID', message: /not canonical/ });
    }),
  );
});

test('property: real keys parse; any 32 bytes either parse or are KEY_INVALID', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
      try {
        parsePublicKey(keyText(Buffer.from(bytes)));
      } catch (error) {
        t.like(error, { code: 'KEY_INVALID' });
      }
    }),
  );
  for (let i = 0; i < 50; i++) {
    const { publicKey } = generateKeyPair();
    t.deepEqual(parsePublicKey(formatPublicKey(publicKey)), publicKey);
  }
});

test('a signature whose R is of small order, or whose S is not below L, is SIGNATURE_INVALID', (t) => {
  const alice = generateKeyPair();
  const good = parseSignature(signBytes(manifest, alice.secretKey));
  const withSignature = (signature: Buffer, global = good.globalSignature) => formatSignature({ ...good, signature, globalSignature: global });
  const sPlusL = encode(BigInt(`0x${Buffer.from(good.signature.subarray(32)).reverse().toString('hex')}`) + L, false);
  for (const { y, negative } of canonicalSmallOrder) {
    const signature = Buffer.concat([encode(y, negative), good.signature.subarray(32)]);
    t.throws(() => verifySignature(withSignature(signature), manifest, alice.publicKey), { code: 'SIGNATURE_INVALID', message: /small order/ });
  }
  t.throws(() => verifySignature(withSignature(Buffer.concat([good.signature.subarray(0, 32), sPlusL])), manifest, alice.publicKey), {
    code: 'SIGNATURE_INVALID',
    message: /not canonical/,
  });
  const global = Buffer.concat([good.globalSignature.subarray(0, 32), encode(L, false)]);
  t.throws(() => verifySignature(withSignature(good.signature, global), manifest, alice.publicKey), { code: 'SIGNATURE_INVALID', message: /not canonical/ });
});
