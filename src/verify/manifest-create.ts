import { discover } from '../discover/discover.js';
import { digestOf, sha256Files } from './hash.js';
import { checkManifest, MANIFEST_SCHEMA, type Manifest } from './manifest.js';

export interface CreateManifestOptions {
  /** tinyglobby patterns relative to the directory (default `['*']`: every file directly in it). */
  patterns?: readonly string[];
  version: number;
  expires: Date;
  concurrency?: number;
}

/**
 * A manifest of the plugins in `dir`: every file matching the patterns, which must all pass the
 * file-safety checks (the first that fails is thrown), hashed. Each plugin is named by its path.
 */
export async function createManifest(dir: string, options: CreateManifestOptions): Promise<Manifest> {
  const results = await discover(dir, options.patterns ?? ['*']);
  // A manifest vouches for bytes; vouching for a file that someone else can rewrite would vouch for their bytes too.
  const unsafe = results.find((result) => !result.ok);
  if (unsafe && !unsafe.ok) throw unsafe.error;
  const candidates = results.flatMap((result) => (result.ok ? [result.candidate] : []));
  const hashed = await sha256Files(
    candidates.map((candidate) => candidate.path),
    options.concurrency,
  );
  // discover returns no symbolic links, so each name is also the file's path in the directory.
  const plugins = candidates.map((candidate, i) => ({ name: candidate.name, path: candidate.name, ...digestOf(hashed[i]) }));
  return checkManifest({ schema: MANIFEST_SCHEMA, version: options.version, expires: options.expires.toISOString(), plugins });
}
