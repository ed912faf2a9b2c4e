// The manifest fields of plugin packages and versions; kept apart so that manifest.ts only gains the calls.
import semver from 'semver';
import { GatehouseError } from '../errors.js';
import type { ManifestPlugin } from './manifest.js';

// Checked before semver parses the text: a long crafted version makes its regular expressions slow (CVE-2022-25883).
const MAX_VERSION_CHARS = 256;

/** A semantic version in canonical form (`1.2.3`, `2.0.0-rc.1`): what is signed is exactly what ranges match. */
export function checkPluginVersion(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.length > MAX_VERSION_CHARS || semver.valid(value) !== value) {
    throw invalid(where, `must be a semantic version in canonical form such as 1.2.3 (no "v", no build metadata), got ${JSON.stringify(value)}`.slice(0, 300));
  }
  return value;
}

/**
 * Checks that a package entry's own file and every listed file lie inside its package directory, so that
 * the tree sealed (and checked for unlisted files) is the whole plugin. Returns the directory.
 */
export function checkPackageFields(plugin: ManifestPlugin, dir: string, where: string): string {
  // A file outside the package would be loaded from a tree nobody checks for unlisted neighbours.
  for (const path of [plugin.path, ...(plugin.files ?? []).map((file) => file.path)]) {
    if (!isInPackage(dir, path)) throw invalid(where, `${JSON.stringify(dir)} does not contain ${JSON.stringify(path)}`);
  }
  // Node runs the package's script; a package without an interpreter would exec a .js file directly.
  if (plugin.interpreter === undefined) throw invalid(where, 'needs an interpreter (node) to run its entry');
  return dir;
}

/** Whether the relative `path` is inside the relative package directory `dir`. */
function isInPackage(dir: string, path: string): boolean {
  return path.startsWith(`${dir}/`);
}

function invalid(where: string, problem: string): GatehouseError {
  return new GatehouseError('MANIFEST_INVALID', `manifest: ${where} ${problem}`);
}
