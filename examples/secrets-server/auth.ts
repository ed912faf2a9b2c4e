// Tokens: the root token is made at init and shown once; the server keeps only its SHA-256.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function newRootToken(): { token: string; sha256: string } {
  const token = `gh.${randomBytes(32).toString('base64url')}`;
  return { token, sha256: tokenDigest(token) };
}

export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Compares digests of equal length in constant time: response timing tells nothing about the root token. */
export function tokenMatches(token: string, storedSha256: string): boolean {
  return timingSafeEqual(Buffer.from(tokenDigest(token), 'hex'), Buffer.from(storedSha256, 'hex'));
}
