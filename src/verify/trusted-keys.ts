import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { checkFileSafety } from '../discover/file-safety.js';
import { fsError } from '../discover/fs-error.js';
import { GatehouseError } from '../errors.js';
import { readPublicKeyFile } from './key-files.js';
import type { MinisignPublicKey } from './minisign-key.js';

/** The trusted public keys: every `*.pub` file directly in `dir`, in minisign's format. */
export async function loadTrustedKeys(dir: string, options: { uid?: number } = {}): Promise<MinisignPublicKey[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith('.pub')).sort();
  } catch (error) {
    // Named as the trust directory: a bare "no such file" would read as the manifest missing.
    const failure = fsError(error, dir);
    const what = failure.code === 'FILE_NOT_FOUND' ? 'does not exist' : failure.message;
    throw new GatehouseError(failure.code, `trust directory ${dir} ${what}: it must hold the signers' public keys (*.pub)`, { cause: error });
  }
  if (names.length === 0) {
    throw new GatehouseError(
      'KEY_INVALID',
      `${dir}: no trusted keys: the trust directory holds no *.pub file; copy the signers' public keys into it ` +
        `(gatehouse keygen writes NAME.pub beside the secret key)`,
    );
  }
  const keys: MinisignPublicKey[] = [];
  for (const name of names) {
    const file = join(dir, name);
    // Whoever can write a key file, or a directory above it, can make their own key trusted.
    await checkFileSafety(file, dir, { executable: false, ...options });
    let key: MinisignPublicKey;
    try {
      key = await readPublicKeyFile(file);
    } catch (error) {
      if (error instanceof GatehouseError && error.code === 'KEY_INVALID') {
        throw new GatehouseError('KEY_INVALID', `${file}: ${error.message}`, { cause: error });
      }
      throw error;
    }
    // Two keys under one id would make a signature's key id ambiguous; one key twice hides how few signers there are.
    const twin = keys.find((other) => other.keyId === key.keyId || other.publicKey.equals(key.publicKey));
    if (twin) throw new GatehouseError('KEY_INVALID', `${file}: same key id or key as another trusted key (${twin.keyId})`);
    keys.push(key);
  }
  return keys;
}
