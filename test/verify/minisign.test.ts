import test from 'ava';
import fc from 'fast-check';
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { inspect } from 'node:util';
import { formatPublicKey, formatSecretKey, generateKeyPair, parsePublicKey, parseSecretKey } from '../../src/verify/minisign-key.js';
import { formatSignature, parseSignature, signBytes, verifySignature } from '../../src/verify/minisign-signature.js';
import { hostileText, throwsOnlyGatehouseErrors } from './fuzz.js';

const message = Buffer.from('the manifest bytes\n');
const pair = generateKeyPair();
const signature = signBytes(message, pair.secretKey, { trustedComment: 'version:7' });

function replaceLine(text: string, index: number, line: string): string {
  const lines = text.split('\n');
  lines[index] = line;
  return lines.join('\n');
}

test('a public key is written as minisign writes it and reads back the same', (t) => {
  const text = formatPublicKey(pair.publicKey);
  t.regex(pair.publicKey.keyId, /^[0-9A-F]{16}$/);
  t.regex(text, /^untrusted comment: minisign public key [0-9A-F]{16}\nRW[Q-T][A-Za-z0-9+/]{53}\n$/);
  t.deepEqual(parsePublicKey(text), pair.publicKey);
});

test('a signature made with a secret key verifies with its public key and yields the trusted comment', (t) => {
  t.deepEqual(verifySignature(signature, message, pair.publicKey), { keyId: pair.publicKey.keyId, algorithm: 'ED', trustedComment: 'version:7' });
});

test('a signature over other bytes is SIGNATURE_INVALID', (t) => {
  t.throws(() => verifySignature(signature, Buffer.from('the manifest bytes!\n'), pair.publicKey), { code: 'SIGNATURE_INVALID' });
});

test('a rewritten trusted comment is SIGNATURE_INVALID even though the file signature is intact', (t) => {
  const forged = replaceLine(signature, 2, 'trusted comment: version:8');
  t.throws(() => verifySignature(forged, message, pair.publicKey), { code: 'SIGNATURE_INVALID', message: /trusted comment/ });
});

test('a signature by another key id is SIGNATURE_UNTRUSTED', (t) => {
  const other = generateKeyPair();
  t.throws(() => verifySignature(signature, message, other.publicKey), { code: 'SIGNATURE_UNTRUSTED' });
});

test('a key that only claims the signer key id is SIGNATURE_INVALID', (t) => {
  const impostor = { ...generateKeyPair().publicKey, keyId: pair.publicKey.keyId };
  t.throws(() => verifySignature(signature, message, impostor), { code: 'SIGNATURE_INVALID' });
});

test('a legacy Ed signature (over the message itself) verifies, as minisign -V accepts it', (t) => {
  const raw = sign(null, message, pair.secretKey.privateKey);
  const legacy = formatSignature({
    untrustedComment: 'legacy',
    algorithm: 'Ed',
    keyId: pair.secretKey.keyId,
    signature: raw,
    claimedTrustedComment: 'old',
    globalSignature: sign(null, Buffer.concat([raw, Buffer.from('old')]), pair.secretKey.privateKey),
  });
  t.is(verifySignature(legacy, message, pair.publicKey).algorithm, 'Ed');
});

test('relabelling a prehashed signature as legacy, or back, is SIGNATURE_INVALID', (t) => {
  const parsed = parseSignature(signature);
  t.throws(() => verifySignature(formatSignature({ ...parsed, algorithm: 'Ed' }), message, pair.publicKey), { code: 'SIGNATURE_INVALID' });
});

const malformedSignatures: Array<[string, string]> = [
  ['three lines', signature.split('\n').slice(0, 3).join('\n')],
  ['a fifth line', `${signature}extra\n`],
  ['no untrusted comment prefix', replaceLine(signature, 0, 'comment: x')],
  ['no trusted comment prefix', replaceLine(signature, 2, 'version:7')],
  ['a control character in the trusted comment', replaceLine(signature, 2, 'trusted comment: a\u001b[2Jb')],
  ['base64 that is not', replaceLine(signature, 1, '!!!!')],
  ['a signature line of the wrong length', replaceLine(signature, 1, Buffer.alloc(73).toString('base64'))],
  ['an unknown algorithm', replaceLine(signature, 1, Buffer.concat([Buffer.from('EX'), Buffer.alloc(72)]).toString('base64'))],
  ['a global signature of the wrong length', replaceLine(signature, 3, Buffer.alloc(63).toString('base64'))],
  ['more than 16 KiB', `${signature}${'\n'.repeat(17_000)}`],
];
for (const [what, text] of malformedSignatures) {
  test(`a signature file with ${what} is SIGNATURE_INVALID`, (t) => {
    t.throws(() => parseSignature(text), { code: 'SIGNATURE_INVALID' });
  });
}

test('base64 with non-zero padding bits (a second spelling of the same bytes) is SIGNATURE_INVALID', (t) => {
  const line = signature.split('\n')[3] ?? '';
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  // Before "==" a character carries 2 bits of data and 4 padding bits that should be zero; set one of those.
  const respelled = `${line.slice(0, -3)}${alphabet[alphabet.indexOf(line.at(-3) ?? '') + 1] ?? ''}==`;
  t.deepEqual(Buffer.from(respelled, 'base64'), Buffer.from(line, 'base64'));
  t.throws(() => parseSignature(replaceLine(signature, 3, respelled)), { code: 'SIGNATURE_INVALID', message: /canonical/ });
});

test('CRLF line ends are read like LF', (t) => {
  t.is(verifySignature(signature.replaceAll('\n', '\r\n'), message, pair.publicKey).trustedComment, 'version:7');
});

test('a trusted comment that could not be read back is refused when signing', (t) => {
  t.throws(() => signBytes(message, pair.secretKey, { trustedComment: 'a\nb' }), { code: 'INVALID_OPTIONS' });
});

test('an unencrypted secret key reads back and signs for the same public key', (t) => {
  const read = parseSecretKey(formatSecretKey(pair.secretKey));
  t.is(read.keyId, pair.secretKey.keyId);
  t.deepEqual(read.publicKey, pair.publicKey.publicKey);
  t.notThrows(() => verifySignature(signBytes(message, read), message, pair.publicKey));
});

function secretKeyBytes(edit: (bytes: Buffer) => void): string {
  const [comment, encoded] = formatSecretKey(pair.secretKey).split('\n');
  const bytes = Buffer.from(encoded ?? '', 'base64');
  edit(bytes);
  return `${comment}\n${bytes.toString('base64')}\n`;
}

test('a password-protected secret key is KEY_INVALID with a way out', (t) => {
  t.throws(() => parseSecretKey(secretKeyBytes((b) => b.write('Sc', 2, 'latin1'))), { code: 'KEY_INVALID', message: /minisign -C -W/ });
});

test('a secret key whose public half does not match its seed is KEY_INVALID', (t) => {
  t.throws(() => parseSecretKey(secretKeyBytes((b) => b.writeUInt8(b.readUInt8(b.length - 40) ^ 1, b.length - 40))), { code: 'KEY_INVALID', message: /does not belong/ });
});

test('a secret key never shows its private half when printed or serialised', (t) => {
  const seedHex = Buffer.from(formatSecretKey(pair.secretKey).split('\n')[1] ?? '', 'base64')
    .subarray(62, 94)
    .toString('hex');
  const shown = `${inspect(pair.secretKey, { depth: 10, showHidden: true })}${JSON.stringify(pair.secretKey)}`;
  t.false(shown.includes(seedHex));
  t.false(shown.includes(Buffer.from(seedHex, 'hex').toString('base64url')));
});

const keyId = fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b).toString('hex').toUpperCase());
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b));
const comment = fc.string({ unit: 'grapheme', maxLength: 60 });

/** Any Ed25519 public key: the one derived from a 32-byte seed (random bytes are mostly not curve points). */
const publicKeyBytes = bytes(32).map((seed) => {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' }).subarray(-32);
});

test('property: any public key formats and parses back to itself', (t) => {
  fc.assert(
    fc.property(keyId, publicKeyBytes, comment, (id, raw, text) => {
      const key = { keyId: id, publicKey: raw };
      const written = formatPublicKey(key, text);
      t.deepEqual(parsePublicKey(written), key);
      return formatPublicKey(parsePublicKey(written), text) === written;
    }),
  );
});

test('property: any signature formats and parses back to itself', (t) => {
  fc.assert(
    fc.property(fc.constantFrom('ED' as const, 'Ed' as const), keyId, bytes(64), bytes(64), comment, comment, (algorithm, id, sig, global, untrusted, trusted) => {
      const parsed = { untrustedComment: untrusted, algorithm, keyId: id, signature: sig, claimedTrustedComment: trusted, globalSignature: global };
      const written = formatSignature(parsed);
      t.deepEqual(parseSignature(written), parsed);
      return formatSignature(parseSignature(written)) === written;
    }),
  );
});

test('property: the minisign parsers throw nothing but GatehouseError on hostile text', (t) => {
  fc.assert(fc.property(hostileText([formatPublicKey(pair.publicKey)]), throwsOnlyGatehouseErrors(parsePublicKey)), { numRuns: 2000 });
  fc.assert(fc.property(hostileText([signature]), throwsOnlyGatehouseErrors(parseSignature)), { numRuns: 2000 });
  fc.assert(fc.property(hostileText([formatSecretKey(pair.secretKey)]), throwsOnlyGatehouseErrors(parseSecretKey)), { numRuns: 2000 });
  t.pass();
});
