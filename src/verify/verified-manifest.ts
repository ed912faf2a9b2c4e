import { verifyManifestFile } from './manifest-files.js';
import type { ManifestPlugin } from './manifest.js';
import type { ManifestPolicy, VerifiedManifest } from './signature-policy.js';

/** One entry of a verified manifest, as a host choosing a plugin needs to see it. */
export interface ManifestEntry {
  name: string;
  /** Its semantic version, when the manifest gives one (several entries may share a name). */
  version?: string;
  /** The file that runs (or the script an interpreter runs), relative to the plugin directory. */
  path: string;
  sha256: string;
  size: number;
  /** The package directory, for a plugin package. */
  package?: string;
  /** The interpreter's path, when the entry is a script. */
  interpreter?: string;
  /** Every file the entry consists of, its own first, relative to the plugin directory. */
  files: string[];
}

/** A manifest that passed the signature policy, with a summary of its entries in manifest order. */
export interface LoadedManifest extends VerifiedManifest {
  entries: ManifestEntry[];
}

/**
 * Reads and verifies a signed manifest (its signatures beside it, as {@link verifyManifestFile}) and lists
 * its entries so that a host can choose one. Nothing is hashed or run: launching verifies the files.
 */
export async function loadVerifiedManifest(manifestPath: string, policy: ManifestPolicy): Promise<LoadedManifest> {
  const verified = await verifyManifestFile(manifestPath, policy);
  return { ...verified, entries: verified.manifest.plugins.map(summary) };
}

function summary(plugin: ManifestPlugin): ManifestEntry {
  return {
    name: plugin.name,
    ...(plugin.version === undefined ? {} : { version: plugin.version }),
    path: plugin.path,
    sha256: plugin.sha256,
    size: plugin.size,
    ...(plugin.package === undefined ? {} : { package: plugin.package }),
    ...(plugin.interpreter === undefined ? {} : { interpreter: plugin.interpreter.path }),
    files: [plugin.path, ...(plugin.files ?? []).map((file) => file.path)],
  };
}
