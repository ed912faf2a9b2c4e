import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsError } from '../discover/fs-error.js';
import { GatehouseError } from '../errors.js';
import { MAX_MANIFEST_BYTES } from './manifest.js';
import { MAX_MINISIGN_FILE_CHARS } from './minisign-text.js';
import { MAX_SIGNATURES, verifyManifest, type ManifestPolicy, type VerifiedManifest } from './signature-policy.js';
import { readLimited } from '../discover/untrusted-file.js';

/**
 * The signature files of a manifest: `MANIFEST.minisig`, then any `MANIFEST.<label>.minisig` (one per
 * further signer, e.g. labelled by key id), sorted.
 */
export async function findSignatureFiles(manifestPath: string): Promise<string[]> {
  const dir = dirname(manifestPath);
  const base = basename(manifestPath);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw fsError(error, dir);
  }
  const main = `${base}.minisig`;
  const further = names.filter((name) => name !== main && name.startsWith(`${base}.`) && name.endsWith('.minisig')).sort();
  return [...(names.includes(main) ? [main] : []), ...further].map((name) => join(dir, name));
}

/**
 * Reads a manifest and its signature files (by default those {@link findSignatureFiles} finds), each with a
 * size limit, and verifies them under `policy`.
 */
export async function verifyManifestFile(manifestPath: string, policy: ManifestPolicy, signaturePaths?: readonly string[]): Promise<VerifiedManifest> {
  const bytes = await readLimited(manifestPath, MAX_MANIFEST_BYTES, 'MANIFEST_TOO_LARGE');
  const paths = signaturePaths ?? (await findSignatureFiles(manifestPath));
  if (paths.length === 0) {
    const base = basename(manifestPath);
    throw new GatehouseError(
      'THRESHOLD_NOT_MET',
      `${manifestPath}: not signed: no ${base}.minisig (or ${base}.*.minisig) beside it; sign it with ` +
        `\`gatehouse manifest sign ${manifestPath} --key FILE\``,
    );
  }
  // Attack: a directory of 20,000 signature files, all opened and read at once before the count is checked.
  if (paths.length > MAX_SIGNATURES) {
    throw new GatehouseError('SIGNATURE_INVALID', `${manifestPath}: ${paths.length} signature files, more than ${MAX_SIGNATURES}; remove the ones no trusted key made`);
  }
  const signatures = await Promise.all(paths.map(async (path) => (await readLimited(path, MAX_MINISIGN_FILE_CHARS, 'SIGNATURE_INVALID')).toString('utf8')));
  return verifyManifest(bytes, signatures, policy);
}
