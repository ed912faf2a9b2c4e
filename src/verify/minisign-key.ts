import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { GatehouseError } from '../errors.js';
import { weakPointReason } from './ed25519-point.js';
import {
  MAX_UNTRUSTED_COMMENT_BYTES,
  UNTRUSTED_COMMENT_PREFIX,
  checkComment,
  commentText,
  decodeBase64,
  keyIdHex,
  splitLines,
} from './minisign-text.js';

/** A minisign public key: what `minisign -G` writes to its `.pub` file. */
export interface MinisignPublicKey {
  /** As minisign prints it: 16 upper-case hex digits. A label for finding the key, not an identity. */
  keyId: string;
  /** The raw 32-byte Ed25519 public key: the key's identity. */
  publicKey: Buffer;
}

/**
 * A minisign secret key. The private half is a node:crypto KeyObject, which prints and serialises as
 * nothing: only {@link formatSecretKey} writes it out.
 */
export interface MinisignSecretKey extends MinisignPublicKey {
  privateKey: KeyObject;
}

export const SIGNATURE_ALGORITHM = 'Ed';
const KDF_NONE = '\0\0';
const KDF_SCRYPT = 'Sc';
const CHECKSUM_ALGORITHM = 'B2';
const KEY_ID_BYTES = 8;
const KEY_BYTES = 32;
const PUBLIC_KEY_FILE_BYTES = 2 + KEY_ID_BYTES + KEY_BYTES;
// Ed || kdf || B2 || salt (32) || opslimit (8) || memlimit (8) || key id || seed || public key || checksum (32).
const SECRET_KEY_FILE_BYTES = 2 + 2 + 2 + 32 + 8 + 8 + KEY_ID_BYTES + KEY_BYTES + KEY_BYTES + 32;
const KEY_ID_OFFSET = 54;

export function generateKeyPair(): { publicKey: MinisignPublicKey; secretKey: MinisignSecretKey } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const keyId = keyIdHex(randomBytes(KEY_ID_BYTES));
  const publicKey = rawPublicKey(privateKey);
  return { publicKey: { keyId, publicKey }, secretKey: { keyId, publicKey, privateKey } };
}

/** A `.pub` file as minisign writes it. */
export function formatPublicKey(key: MinisignPublicKey, comment = `minisign public key ${key.keyId}`): string {
  checkComment(comment, MAX_UNTRUSTED_COMMENT_BYTES, 'KEY_INVALID', 'public key');
  const bytes = Buffer.concat([Buffer.from(SIGNATURE_ALGORITHM, 'latin1'), keyIdBytes(key.keyId), key.publicKey]);
  return `${UNTRUSTED_COMMENT_PREFIX}${comment}\n${bytes.toString('base64')}\n`;
}

/** Parses a `.pub` file: the untrusted comment line and base64 of `Ed` || key id || Ed25519 key. */
export function parsePublicKey(text: string): MinisignPublicKey {
  const [comment = '', encoded = ''] = splitLines(text, 2, 'KEY_INVALID', 'public key');
  commentText(comment, UNTRUSTED_COMMENT_PREFIX, MAX_UNTRUSTED_COMMENT_BYTES, 'KEY_INVALID', 'public key');
  const bytes = decodeBase64(encoded, PUBLIC_KEY_FILE_BYTES, 'KEY_INVALID', 'public key');
  if (bytes.toString('latin1', 0, 2) !== SIGNATURE_ALGORITHM) {
    throw new GatehouseError('KEY_INVALID', 'public key: algorithm is not Ed25519 ("Ed")');
  }
  const key = { keyId: keyIdHex(bytes.subarray(2, 2 + KEY_ID_BYTES)), publicKey: bytes.subarray(2 + KEY_ID_BYTES) };
  checkPublicKey(key);
  return key;
}

/**
 * Refuses a key no honest signer can have, as libsodium (and so `minisign -V`) does: with a small-order
 * key, OpenSSL accepts a forged signature (R = identity, S = 0) over any message.
 */
export function checkPublicKey(key: MinisignPublicKey): void {
  // A key of small order (or another spelling of one) would let anyone sign as this "vendor".
  const reason = weakPointReason(key.publicKey);
  if (reason !== undefined) {
    throw new GatehouseError('KEY_INVALID', `public key ${key.keyId} ${reason}; minisign refuses it too: use a key made by \`gatehouse keygen\` or \`minisign -G\``);
  }
}

/**
 * An unencrypted secret key file, byte for byte what `minisign -G -W` writes: no KDF, and (as minisign
 * does for unencrypted keys) a zero checksum, which minisign never checks for them.
 */
export function formatSecretKey(key: MinisignSecretKey, comment = 'minisign secret key, unencrypted'): string {
  checkComment(comment, MAX_UNTRUSTED_COMMENT_BYTES, 'KEY_INVALID', 'secret key');
  const jwk = key.privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d ?? '', 'base64url');
  const bytes = Buffer.alloc(SECRET_KEY_FILE_BYTES);
  bytes.write(SIGNATURE_ALGORITHM, 0, 'latin1');
  bytes.write(KDF_NONE, 2, 'latin1');
  bytes.write(CHECKSUM_ALGORITHM, 4, 'latin1');
  keyIdBytes(key.keyId).copy(bytes, KEY_ID_OFFSET);
  seed.copy(bytes, KEY_ID_OFFSET + KEY_ID_BYTES);
  key.publicKey.copy(bytes, KEY_ID_OFFSET + KEY_ID_BYTES + KEY_BYTES);
  const text = `${UNTRUSTED_COMMENT_PREFIX}${comment}\n${bytes.toString('base64')}\n`;
  bytes.fill(0);
  seed.fill(0);
  return text;
}

/**
 * Parses an unencrypted minisign secret key file, as `minisign -G -W` writes it. Password-protected keys
 * are refused: gatehouse has no way to ask for a password.
 */
export function parseSecretKey(text: string): MinisignSecretKey {
  const [comment = '', encoded = ''] = splitLines(text, 2, 'KEY_INVALID', 'secret key');
  commentText(comment, UNTRUSTED_COMMENT_PREFIX, MAX_UNTRUSTED_COMMENT_BYTES, 'KEY_INVALID', 'secret key');
  const bytes = decodeBase64(encoded, SECRET_KEY_FILE_BYTES, 'KEY_INVALID', 'secret key');
  try {
    if (bytes.toString('latin1', 0, 2) !== SIGNATURE_ALGORITHM) throw new GatehouseError('KEY_INVALID', 'secret key: algorithm is not Ed25519 ("Ed")');
    const kdf = bytes.toString('latin1', 2, 4);
    if (kdf === KDF_SCRYPT) {
      throw new GatehouseError('KEY_INVALID', 'secret key: encrypted with a password; remove it with `minisign -C -W` or make a new key');
    }
    if (kdf !== KDF_NONE) throw new GatehouseError('KEY_INVALID', 'secret key: unknown key derivation function');
    if (bytes.toString('latin1', 4, 6) !== CHECKSUM_ALGORITHM) throw new GatehouseError('KEY_INVALID', 'secret key: unknown checksum function');
    const keyId = keyIdHex(bytes.subarray(KEY_ID_OFFSET, KEY_ID_OFFSET + KEY_ID_BYTES));
    const seed = bytes.subarray(KEY_ID_OFFSET + KEY_ID_BYTES, KEY_ID_OFFSET + KEY_ID_BYTES + KEY_BYTES);
    const publicKey = Buffer.from(bytes.subarray(KEY_ID_OFFSET + KEY_ID_BYTES + KEY_BYTES, KEY_ID_OFFSET + KEY_ID_BYTES + 2 * KEY_BYTES));
    const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: seed.toString('base64url'), x: publicKey.toString('base64url') }, format: 'jwk' });
    // The checksum is zero in unencrypted keys, so the public half is checked against the seed instead:
    // a corrupted key must not sign with one key while claiming another.
    if (!rawPublicKey(privateKey).equals(publicKey)) {
      throw new GatehouseError('KEY_INVALID', 'secret key: its public half does not belong to its private half');
    }
    return { keyId, publicKey, privateKey };
  } catch (error) {
    if (error instanceof GatehouseError) throw error;
    throw new GatehouseError('KEY_INVALID', 'secret key: not an Ed25519 key', { cause: error });
  } finally {
    bytes.fill(0);
  }
}

/** The 8 key-id bytes of a key id printed as minisign prints it. */
export function keyIdBytes(keyId: string): Buffer {
  if (!/^[0-9A-F]{16}$/.test(keyId)) throw new GatehouseError('KEY_INVALID', `key id must be 16 upper-case hex digits, got ${JSON.stringify(keyId)}`);
  return Buffer.from(keyId, 'hex').reverse();
}

/** A raw 32-byte Ed25519 public key as a node:crypto KeyObject, for crypto.verify. */
export function publicKeyObject(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x ?? '', 'base64url');
}
