import { rm } from 'node:fs/promises';
import { GatehouseError } from '../errors.js';
import { writeNewFile } from './atomic-file.js';
import { formatPublicKey, formatSecretKey, parsePublicKey, parseSecretKey, type MinisignPublicKey, type MinisignSecretKey } from './minisign-key.js';
import { MAX_MINISIGN_FILE_CHARS } from './minisign-text.js';
import { readLimited } from '../discover/untrusted-file.js';

/**
 * Writes `<prefix>.pub` (0644) and `<prefix>.key` (0600, unencrypted, readable by minisign -W) and refuses
 * to overwrite either. Returns the two paths.
 */
export async function writeKeyPair(
  prefix: string,
  pair: { publicKey: MinisignPublicKey; secretKey: MinisignSecretKey },
): Promise<{ publicKeyPath: string; secretKeyPath: string }> {
  const publicKeyPath = `${prefix}.pub`;
  const secretKeyPath = `${prefix}.key`;
  // Created 0600, so there is no moment at which another user could open the secret key.
  await writeNewFile(secretKeyPath, formatSecretKey(pair.secretKey), 0o600, 'a key');
  try {
    await writeNewFile(publicKeyPath, formatPublicKey(pair.publicKey), 0o644, 'a key');
  } catch (error) {
    await rm(secretKeyPath, { force: true });
    throw error;
  }
  return { publicKeyPath, secretKeyPath };
}

export async function readPublicKeyFile(file: string): Promise<MinisignPublicKey> {
  return parsePublicKey((await readLimited(file, MAX_MINISIGN_FILE_CHARS, 'KEY_INVALID')).toString('utf8'));
}

/** Reads an unencrypted minisign secret key, refusing one that other users can read (as ssh does). */
export async function readSecretKeyFile(file: string): Promise<MinisignSecretKey> {
  const bytes = await readLimited(file, MAX_MINISIGN_FILE_CHARS, 'KEY_INVALID', (stats) => {
    // A secret key others could read may already be theirs; signing with it would prove nothing.
    if ((stats.mode & 0o077) !== 0) {
      throw new GatehouseError('KEY_INVALID', `${file}: secret key is accessible by group or others (mode ${(stats.mode & 0o777).toString(8)}); chmod 600 it`);
    }
  });
  try {
    return parseSecretKey(bytes.toString('utf8'));
  } finally {
    bytes.fill(0);
  }
}
