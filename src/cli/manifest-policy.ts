/**
 * The options `gatehouse verify` and `gatehouse call --manifest` share (--manifest, --trust, --threshold,
 * --state) and the check they both run: the manifest's signatures, expiry and version.
 */
import { FileRollbackState } from '../verify/rollback-state.js';
import { verifyManifestFile } from '../verify/manifest-files.js';
import type { ManifestPolicy, VerifiedManifest } from '../verify/signature-policy.js';
import { loadTrustedKeys } from '../verify/trusted-keys.js';
import { usageError } from './command-line.js';

export const MANIFEST_OPTIONS = {
  manifest: { type: 'string' },
  trust: { type: 'string' },
  threshold: { type: 'string' },
  state: { type: 'string' },
} as const;

export const MANIFEST_OPTIONS_HELP = `  --manifest FILE              the signed manifest; its signatures are FILE.minisig and FILE.*.minisig
  --trust DIR                  directory of trusted public keys (*.pub, minisign format)
  --threshold K                signatures needed, each by a different trusted key (default 1)
  --state FILE                 remembers the highest manifest version accepted and refuses older ones`;

export interface ManifestSource {
  manifest: string;
  trust: string;
  threshold: number;
  state: string | undefined;
}

interface ManifestValues {
  manifest?: string | undefined;
  trust?: string | undefined;
  threshold?: string | undefined;
  state?: string | undefined;
}

/** The manifest options of `command`, or undefined when --manifest is absent (then none of the others may be given). */
export function manifestSource(command: string, values: ManifestValues): ManifestSource | undefined {
  if (values.manifest === undefined) {
    const stray = (['trust', 'threshold', 'state'] as const).find((name) => values[name] !== undefined);
    if (stray !== undefined) throw usageError(command, `--${stray} goes with --manifest`);
    return undefined;
  }
  // No default key directory: which keys are trusted is the one decision verification cannot guess.
  if (values.trust === undefined) throw usageError(command, '--trust DIR is required with --manifest');
  return { manifest: values.manifest, ...policySource(command, { ...values, trust: values.trust }) };
}

/** --trust (required by the caller), --threshold (default 1) and --state, checked. */
export function policySource(command: string, values: Omit<ManifestValues, 'manifest'> & { trust: string }): Omit<ManifestSource, 'manifest'> {
  const threshold = values.threshold ?? '1';
  if (!/^[1-9][0-9]{0,3}$/.test(threshold)) throw usageError(command, '--threshold must be a positive whole number');
  return { trust: values.trust, threshold: Number(threshold), state: values.state };
}

/** The keys, threshold and rollback state the options name. */
export async function manifestPolicy(source: Omit<ManifestSource, 'manifest'>): Promise<ManifestPolicy> {
  return {
    trustedKeys: await loadTrustedKeys(source.trust),
    threshold: source.threshold,
    state: source.state === undefined ? undefined : new FileRollbackState(source.state),
  };
}

/** The manifest, once enough trusted keys signed it and it is neither expired nor older than --state allows. */
export async function verifiedManifest(source: ManifestSource): Promise<VerifiedManifest> {
  return verifyManifestFile(source.manifest, await manifestPolicy(source));
}
