import { parseManifest } from './manifest.js';
import type { MinisignSecretKey } from './minisign-key.js';
import { signBytes } from './minisign-signature.js';

/**
 * A `.minisig` for manifest bytes, refusing bytes that are not a valid manifest: a signer should never
 * vouch for something every host will reject. The default trusted comment carries the version.
 */
export function signManifest(manifestBytes: Uint8Array, secretKey: MinisignSecretKey, options: { trustedComment?: string } = {}): string {
  const manifest = parseManifest(manifestBytes);
  const trustedComment = options.trustedComment ?? `timestamp:${Math.floor(Date.now() / 1000)}\tgatehouse manifest version:${manifest.version}`;
  return signBytes(manifestBytes, secretKey, { trustedComment });
}
