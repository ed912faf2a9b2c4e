import { discover, type DiscoveryResult } from '../discover/discover.js';
import { GatehouseError } from '../errors.js';
import { digestOf, sha256Files } from './hash.js';
import { checkManifest, MANIFEST_SCHEMA, type Manifest, type ManifestPlugin } from './manifest.js';
import { createPackageEntry, type PackageSpec } from './package-create.js';

export interface CreateManifestOptions {
  /** tinyglobby patterns relative to the directory (default `['*']`: every file directly in it). */
  patterns?: readonly string[];
  version: number;
  expires: Date;
  concurrency?: number;
  /** Plugin packages to list too; with packages and no patterns, no loose files are listed. */
  packages?: readonly PackageSpec[];
}

/**
 * A manifest of the plugins in `dir`: every file matching the patterns, which must all pass the
 * file-safety checks (the first that fails is thrown), hashed. Each plugin is named by its path. A
 * manifest of nothing is refused (FILE_NOT_FOUND when the patterns, or one of them, match no file): it hides a typo.
 */
export async function createManifest(dir: string, options: CreateManifestOptions): Promise<Manifest> {
  const patterns = options.patterns ?? (options.packages?.length ? [] : ['*']);
  if (patterns.length === 0 && !options.packages?.length) throw new GatehouseError('INVALID_OPTIONS', 'createManifest: no patterns and no packages: nothing to list');
  const results = patterns.length === 0 ? [] : await discover(dir, patterns, { everyPatternMatches: true });
  if (patterns.length > 0 && results.length === 0) {
    throw new GatehouseError('FILE_NOT_FOUND', `no file in ${dir} matches ${patterns.join(', ')}; check DIR and the patterns (dot files are never listed)`);
  }
  const plugins = await checkedPlugins(results, options.concurrency);
  for (const spec of options.packages ?? []) plugins.push(await createPackageEntry(dir, spec, options.concurrency));
  return checkManifest({ schema: MANIFEST_SCHEMA, version: options.version, expires: options.expires.toISOString(), plugins });
}

/**
 * The manifest entries of discovered files, in their order, each named by its path, once every one passed
 * the file-safety checks (the first failure is thrown). Both ways of listing plugins (patterns and a
 * SHA256SUMS file) come through here, so neither vouches for a file the other would refuse.
 */
export async function checkedPlugins(results: readonly DiscoveryResult[], concurrency?: number): Promise<ManifestPlugin[]> {
  // A manifest vouches for bytes; vouching for a file that someone else can rewrite would vouch for their bytes too.
  const unsafe = results.find((result) => !result.ok);
  if (unsafe && !unsafe.ok) throw unsafe.error;
  const candidates = results.flatMap((result) => (result.ok ? [result.candidate] : []));
  const hashed = await sha256Files(
    candidates.map((candidate) => candidate.path),
    concurrency,
  );
  // discover returns no symbolic links, so each name is also the file's path in the directory.
  return candidates.map((candidate, i) => ({ name: candidate.name, path: candidate.name, ...digestOf(hashed[i]) }));
}
