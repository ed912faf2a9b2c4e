import semver from 'semver';
import { GatehouseError } from '../errors.js';
import type { Manifest, ManifestPlugin } from './manifest.js';

/** Why an entry was chosen: the only one of its name, an exact pin, the highest in a range, or the highest of all. */
export type VersionReason = 'only' | 'pin' | 'range' | 'highest';

export interface PluginSelection {
  entry: ManifestPlugin;
  /** What the host asked for (a range or a pin), if anything. */
  requested?: string;
  reason: VersionReason;
}

// Checked before semver parses the text: a long crafted range makes its regular expressions slow (CVE-2022-25883).
const MAX_RANGE_CHARS = 256;

/**
 * Chooses the entry named `name` from a verified manifest: with `requested` (npm semver range such as `^1.2`,
 * or an exact version) the highest listed version it matches, otherwise the highest version listed. A
 * request that matches nothing fails naming the versions available (PLUGIN_VERSION_NOT_FOUND).
 */
export function selectPlugin(manifest: Manifest, name: string, requested?: string): PluginSelection {
  const named = manifest.plugins.filter((plugin) => plugin.name === name);
  if (named.length === 0) {
    // Names what is there, so a typo is fixed without opening the manifest.
    const listed = [...new Set(manifest.plugins.map((plugin) => plugin.name))].join(', ') || 'no plugins';
    throw new GatehouseError('PLUGIN_NOT_IN_MANIFEST', `${name}: not in manifest version ${manifest.version}; it lists: ${listed}`);
  }
  const versions = named.flatMap((plugin) => (plugin.version === undefined ? [] : [plugin.version]));
  if (requested === undefined) {
    const [only] = named;
    if (named.length === 1 && only) return { entry: only, reason: 'only' };
    return { entry: byVersion(named, semver.rsort([...versions])[0]), reason: 'highest' };
  }
  const pin = semver.valid(requested) === requested;
  if (requested.length > MAX_RANGE_CHARS || (!pin && semver.validRange(requested) === null)) {
    throw new GatehouseError('INVALID_OPTIONS', `${name}: ${JSON.stringify(requested.slice(0, 80))} is neither a semantic version nor a version range`);
  }
  // A pin means those exact bytes; a range takes the newest signed match (pre-releases only if the range names them).
  const match = pin ? versions.find((version) => version === requested) : semver.maxSatisfying(versions, requested);
  if (match === undefined || match === null) {
    const available = versions.length === 0 ? 'no versioned entries' : `available: ${semver.rsort([...versions]).join(', ')}`;
    throw new GatehouseError('PLUGIN_VERSION_NOT_FOUND', `${name}@${requested}: no entry in manifest version ${manifest.version} matches (${available})`, {
      details: { availableVersions: versions },
    });
  }
  return { entry: byVersion(named, match), requested, reason: pin ? 'pin' : 'range' };
}

/**
 * Splits a command-line `NAME@RANGE` at its last `@` when what follows is a version or range (a scoped name
 * such as `@acme/kv` keeps its leading `@`); otherwise the whole text is the name.
 */
export function parsePluginRequest(text: string): { name: string; version?: string } {
  const at = text.lastIndexOf('@');
  if (at <= 0) return { name: text };
  const version = text.slice(at + 1);
  if (version === '' || semver.validRange(version) === null) return { name: text };
  return { name: text.slice(0, at), version };
}

function byVersion(named: ManifestPlugin[], version: string | undefined): ManifestPlugin {
  const entry = named.find((plugin) => plugin.version === version);
  // checkManifest guarantees that entries sharing a name each carry a distinct version.
  if (entry === undefined) throw new GatehouseError('PLUGIN_NOT_IN_MANIFEST', `no entry with version ${String(version)}`);
  return entry;
}
