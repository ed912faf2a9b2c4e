import { dirname, isAbsolute } from 'node:path';
import { GatehouseError } from '../errors.js';
import { verifyPlugins } from './installed-plugins.js';
import type { ManifestPlugin } from './manifest.js';
import { verifyManifestFile } from './manifest-files.js';
import { sealPluginPackage } from './package-seal.js';
import type { SealedPlugin, SealOptions } from './seal.js';
import type { ManifestPolicy, VerifiedManifest } from './signature-policy.js';
import { selectPlugin, type PluginSelection } from './versions.js';

export interface VerifiedPluginRequest {
  /** Path of the signed manifest; its signatures sit beside it (MANIFEST.minisig, MANIFEST.*.minisig). */
  manifestPath: string;
  /** The manifest entry to run. */
  plugin: string;
  /** A semver range (`^1.2`) or exact version (a pin) of `plugin`; the highest listed match runs. Default: the highest listed. */
  version?: string;
  /** Where the entry's relative paths resolve (default: the manifest's directory). */
  pluginDir?: string;
  /** Whose signatures count, how many, and the rollback state. */
  policy: ManifestPolicy;
  seal?: SealOptions;
}

export interface VerifiedPlugin {
  verified: VerifiedManifest;
  entry: ManifestPlugin;
  /** Which version was chosen and why. */
  selection: PluginSelection;
  /** The private copy to execute: `sealed.command` with `sealed.args`. Dispose it after the plugin exits. */
  sealed: SealedPlugin;
}

/** As for launch()'s command: a relative path resolves against whatever directory the host runs in. */
export function checkManifestPath(manifestPath: string): void {
  if (isAbsolute(manifestPath)) return;
  throw new GatehouseError(
    'INVALID_OPTIONS',
    `manifestPath must be an absolute path, got ${JSON.stringify(manifestPath.slice(0, 200))}: resolve it first (path.resolve()), so that which manifest is trusted does not depend on the host's working directory`,
  );
}

/**
 * Everything between "a host wants plugin NAME" and "these exact bytes may run": the manifest's
 * signatures, expiry and version; the entry's files and the directories above them (which sealing
 * alone cannot judge, e.g. an unpinned system interpreter others could rewrite); then the sealed copy.
 */
export async function sealVerifiedPlugin(request: VerifiedPluginRequest): Promise<VerifiedPlugin> {
  checkManifestPath(request.manifestPath);
  const verified = await verifyManifestFile(request.manifestPath, request.policy);
  // The highest match only: falling back to an older version when it fails would let a tamperer pick the version.
  const selection = selectPlugin(verified.manifest, request.plugin, request.version);
  const entry = selection.entry;
  const dir = request.pluginDir ?? dirname(request.manifestPath);
  const [checked] = await verifyPlugins({ ...verified.manifest, plugins: [entry] }, dir);
  if (checked !== undefined && !checked.ok) throw checked.error;
  return { verified, entry, selection, sealed: await sealPluginPackage(entry, dir, request.seal) };
}
