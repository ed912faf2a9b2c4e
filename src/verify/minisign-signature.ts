import { createHash, sign, verify } from 'node:crypto';
import { GatehouseError } from '../errors.js';
import { isCanonicalScalar, weakPointReason } from './ed25519-point.js';
import { checkPublicKey, keyIdBytes, publicKeyObject, SIGNATURE_ALGORITHM, type MinisignPublicKey, type MinisignSecretKey } from './minisign-key.js';
import {
  MAX_TRUSTED_COMMENT_BYTES,
  MAX_UNTRUSTED_COMMENT_BYTES,
  TRUSTED_COMMENT_PREFIX,
  UNTRUSTED_COMMENT_PREFIX,
  checkComment,
  commentText,
  decodeBase64,
  keyIdHex,
  splitLines,
} from './minisign-text.js';

/** `ED`: Ed25519 over BLAKE2b-512 of the file (what gatehouse writes); `Ed`: over the file itself (minisign -l). */
export type SignatureAlgorithm = 'ED' | 'Ed';

/**
 * A `.minisig` file as read, before anything in it is verified: its trusted comment is only a claim
 * until {@link verifySignature} has checked the global signature over it.
 */
export interface ParsedSignature {
  untrustedComment: string;
  algorithm: SignatureAlgorithm;
  keyId: string;
  signature: Buffer;
  claimedTrustedComment: string;
  globalSignature: Buffer;
}

/** What a signature proved: this key signed the message, and this trusted comment with it. */
export interface VerifiedSignature {
  keyId: string;
  algorithm: SignatureAlgorithm;
  trustedComment: string;
}

export interface SignOptions {
  /** Signed along with the message (default `timestamp:<unix seconds>`, as minisign writes). */
  trustedComment?: string;
  untrustedComment?: string;
}

const PREHASHED: SignatureAlgorithm = 'ED';
const SIGNATURE_BYTES = 64;
const SIGNATURE_LINE_BYTES = 2 + 8 + SIGNATURE_BYTES;

/** Parses the four lines of a `.minisig` file; verifies nothing. */
export function parseSignature(text: string): ParsedSignature {
  const [untrusted = '', encoded = '', trusted = '', global = ''] = splitLines(text, 4, 'SIGNATURE_INVALID', 'signature');
  const untrustedComment = commentText(untrusted, UNTRUSTED_COMMENT_PREFIX, MAX_UNTRUSTED_COMMENT_BYTES, 'SIGNATURE_INVALID', 'signature');
  const bytes = decodeBase64(encoded, SIGNATURE_LINE_BYTES, 'SIGNATURE_INVALID', 'signature');
  const algorithm = bytes.toString('latin1', 0, 2);
  if (algorithm !== PREHASHED && algorithm !== SIGNATURE_ALGORITHM) {
    throw new GatehouseError('SIGNATURE_INVALID', `signature: unknown algorithm ${JSON.stringify(algorithm)}`);
  }
  return {
    untrustedComment,
    algorithm,
    keyId: keyIdHex(bytes.subarray(2, 10)),
    signature: bytes.subarray(10),
    claimedTrustedComment: commentText(trusted, TRUSTED_COMMENT_PREFIX, MAX_TRUSTED_COMMENT_BYTES, 'SIGNATURE_INVALID', 'signature'),
    globalSignature: decodeBase64(global, SIGNATURE_BYTES, 'SIGNATURE_INVALID', 'global signature'),
  };
}

export function formatSignature(signature: ParsedSignature): string {
  checkComment(signature.untrustedComment, MAX_UNTRUSTED_COMMENT_BYTES, 'SIGNATURE_INVALID', 'signature');
  checkComment(signature.claimedTrustedComment, MAX_TRUSTED_COMMENT_BYTES, 'SIGNATURE_INVALID', 'signature');
  const line = Buffer.concat([Buffer.from(signature.algorithm, 'latin1'), keyIdBytes(signature.keyId), signature.signature]);
  return (
    `${UNTRUSTED_COMMENT_PREFIX}${signature.untrustedComment}\n${line.toString('base64')}\n` +
    `${TRUSTED_COMMENT_PREFIX}${signature.claimedTrustedComment}\n${signature.globalSignature.toString('base64')}\n`
  );
}

/** A prehashed (`ED`) minisign signature of `message`, as the text of a `.minisig` file. */
export function signBytes(message: Uint8Array, key: MinisignSecretKey, options: SignOptions = {}): string {
  const trustedComment = options.trustedComment ?? `timestamp:${Math.floor(Date.now() / 1000)}`;
  const untrustedComment = options.untrustedComment ?? `signature from minisign secret key ${key.keyId}`;
  checkComment(trustedComment, MAX_TRUSTED_COMMENT_BYTES, 'INVALID_OPTIONS', 'trusted comment');
  checkComment(untrustedComment, MAX_UNTRUSTED_COMMENT_BYTES, 'INVALID_OPTIONS', 'untrusted comment');
  const signature = sign(null, signedData(PREHASHED, message), key.privateKey);
  const globalSignature = sign(null, globalData(signature, trustedComment), key.privateKey);
  return formatSignature({ untrustedComment, algorithm: PREHASHED, keyId: key.keyId, signature, claimedTrustedComment: trustedComment, globalSignature });
}

/**
 * Checks a `.minisig` text against `message` and `key`, as `minisign -V` does: the signature over the
 * message, then the global signature over the signature and the trusted comment. Accepts legacy `Ed`
 * signatures (as minisign does without -H): Ed25519 over the whole message is no weaker than over its hash.
 */
export function verifySignature(signatureText: string, message: Uint8Array, key: MinisignPublicKey): VerifiedSignature {
  const parsed = parseSignature(signatureText);
  // The key id is only a label; matching it picks the key, the signature check below decides.
  if (parsed.keyId !== key.keyId) {
    throw new GatehouseError('SIGNATURE_UNTRUSTED', `signature made by key ${parsed.keyId}, not by key ${key.keyId}`);
  }
  // Also for a key object that never went through parsePublicKey: a small-order key must never count.
  checkPublicKey(key);
  checkSignatureBytes(parsed.signature, `signature by key ${key.keyId}`);
  checkSignatureBytes(parsed.globalSignature, `global signature by key ${key.keyId}`);
  const publicKey = publicKeyObject(key.publicKey);
  if (!verify(null, signedData(parsed.algorithm, message), publicKey, parsed.signature)) {
    throw new GatehouseError('SIGNATURE_INVALID', `signature by key ${key.keyId} does not match the data`);
  }
  // Without this, anyone could rewrite the trusted comment under a valid signature.
  if (!verify(null, globalData(parsed.signature, parsed.claimedTrustedComment), publicKey, parsed.globalSignature)) {
    throw new GatehouseError('SIGNATURE_INVALID', `trusted comment of the signature by key ${key.keyId} is not signed`);
  }
  return { keyId: parsed.keyId, algorithm: parsed.algorithm, trustedComment: parsed.claimedTrustedComment };
}

/** The checks libsodium makes before verifying and OpenSSL does not (see ed25519-point.ts). */
function checkSignatureBytes(signature: Buffer, what: string): void {
  // A small-order R is how a forgery under a weak key is built; libsodium refuses it whatever the key.
  const reason = weakPointReason(signature.subarray(0, 32));
  if (reason !== undefined) throw new GatehouseError('SIGNATURE_INVALID', `${what}: its R ${reason}`);
  // S + L is a second signature for the same message (malleability).
  if (!isCanonicalScalar(signature.subarray(32))) throw new GatehouseError('SIGNATURE_INVALID', `${what}: its S is not canonical (not below the group order)`);
}

function signedData(algorithm: SignatureAlgorithm, message: Uint8Array): Uint8Array {
  return algorithm === PREHASHED ? createHash('blake2b512').update(message).digest() : message;
}

function globalData(signature: Uint8Array, trustedComment: string): Buffer {
  return Buffer.concat([signature, Buffer.from(trustedComment, 'utf8')]);
}
