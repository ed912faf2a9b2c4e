import { createHash } from 'node:crypto';
import { GatehouseError } from '../errors.js';
import { MAX_MANIFEST_BYTES, parseManifest, type Manifest } from './manifest.js';
import type { MinisignPublicKey } from './minisign-key.js';
import { parseSignature, verifySignature, type VerifiedSignature } from './minisign-signature.js';
import type { RollbackState } from './rollback-state.js';

export interface ManifestPolicy {
  /** The keys whose signatures count, from {@link loadTrustedKeys}. */
  trustedKeys: readonly MinisignPublicKey[];
  /** Valid signatures needed, each from a different trusted key (default 1). */
  threshold?: number;
  /** The time to judge expiry by (default: now). */
  now?: Date;
  /** Where the highest accepted version is kept; without it, only expiry stops an old manifest. */
  state?: RollbackState;
}

/** A manifest that passed the policy, with the proof: one verified signature per distinct trusted key. */
export interface VerifiedManifest {
  manifest: Manifest;
  /** SHA-256 of the manifest bytes, for logs and audit. */
  sha256: string;
  signatures: VerifiedSignature[];
}

/** More signature files than any real threshold needs are refused before any is checked. */
export const MAX_SIGNATURES = 64;

/**
 * Accepts manifest bytes only if at least `threshold` distinct trusted keys signed them, they are not
 * expired, and their version is not lower than the highest `state` has accepted (which is then raised).
 * The bytes are parsed only after the signatures verified.
 */
export async function verifyManifest(manifestBytes: Uint8Array, signatures: readonly string[], policy: ManifestPolicy): Promise<VerifiedManifest> {
  const threshold = policy.threshold ?? 1;
  const distinctKeys = new Set(policy.trustedKeys.map((key) => key.publicKey.toString('hex'))).size;
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > distinctKeys) {
    throw new GatehouseError('INVALID_OPTIONS', `threshold must be an integer from 1 to the ${distinctKeys} trusted keys, got ${threshold}`);
  }
  if (manifestBytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new GatehouseError('MANIFEST_TOO_LARGE', `manifest: ${manifestBytes.byteLength} bytes, more than ${MAX_MANIFEST_BYTES}`);
  }
  if (signatures.length > MAX_SIGNATURES) throw new GatehouseError('SIGNATURE_INVALID', `more than ${MAX_SIGNATURES} signatures`);

  const verified = new Map<string, VerifiedSignature>();
  const failures: GatehouseError[] = [];
  for (const text of signatures) {
    try {
      const keyId = parseSignature(text).keyId;
      const key = policy.trustedKeys.find((candidate) => candidate.keyId === keyId);
      if (!key) throw new GatehouseError('SIGNATURE_UNTRUSTED', `signature by key ${keyId}, which is not trusted`);
      // Counted per public key, not per signature or key id: K signatures by one key are one signer.
      verified.set(key.publicKey.toString('hex'), verifyManifestSignature(text, manifestBytes, key));
    } catch (error) {
      if (!(error instanceof GatehouseError)) throw error;
      failures.push(error);
    }
  }
  if (verified.size < threshold) {
    const [first] = failures;
    if (threshold === 1 && first) throw first;
    const reasons = failures.map((failure) => failure.message).join('; ');
    throw new GatehouseError(
      'THRESHOLD_NOT_MET',
      `manifest signed by ${verified.size} of the ${threshold} distinct trusted keys required${reasons ? ` (${reasons})` : ''}`,
    );
  }

  // Parsed only now, so that no unsigned byte ever reaches the parser.
  const manifest = parseManifest(manifestBytes);
  const now = policy.now ?? new Date();
  // An expired manifest is refused so that an attacker cannot keep a host on old, vulnerable plugins forever (freeze).
  if (now.getTime() >= Date.parse(manifest.expires)) {
    throw new GatehouseError(
      'MANIFEST_EXPIRED',
      // The clock it was judged by: after a clock jump (a wrong RTC, an NTP step) the manifest is fine and the clock is not.
      `manifest version ${manifest.version} expired at ${manifest.expires} (it is ${now.toISOString()} by this host's clock; ` +
        `if that is wrong, correct the clock); ${newReleaseAdvice(manifest.version)}`,
    );
  }
  const highest = await policy.state?.highestVersion();
  // A validly signed older manifest would bring back plugins a newer one withdrew (rollback).
  if (highest !== undefined && manifest.version < highest) {
    throw new GatehouseError(
      'MANIFEST_ROLLBACK',
      `manifest version ${manifest.version} is older than version ${highest}, already accepted: an older release cannot ` +
        `come back once a newer one ran; install the current release again, or have its contents signed as version ${highest + 1}`,
    );
  }
  await policy.state?.accept(manifest.version);
  return { manifest, sha256: createHash('sha256').update(manifestBytes).digest('hex'), signatures: [...verified.values()] };
}

/** What to do about a manifest that has expired, or soon will: sign its successor. */
export function newReleaseAdvice(version: number): string {
  return `publish a new version and sign it (gatehouse manifest create --version ${version + 1} --expires-in DAYS, then gatehouse manifest sign)`;
}

/** A trusted key's signature over the manifest; a mismatch most often means the manifest was edited after signing. */
function verifyManifestSignature(text: string, manifestBytes: Uint8Array, key: MinisignPublicKey): VerifiedSignature {
  try {
    return verifySignature(text, manifestBytes, key);
  } catch (error) {
    if (!(error instanceof GatehouseError) || error.code !== 'SIGNATURE_INVALID') throw error;
    throw new GatehouseError(
      'SIGNATURE_INVALID',
      `${error.message}: the manifest changed after it was signed (or the signature is another file's); ` +
        `if the change is wanted, sign the manifest again with gatehouse manifest sign`,
      { cause: error },
    );
  }
}
