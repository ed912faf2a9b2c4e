import { dirname } from 'node:path';
import type { AuditLog } from '../audit/index.js';
import type { GatehouseErrorCode } from '../errors.js';
import { verifyPlugins } from '../verify/installed-plugins.js';
import { findSignatureFiles, verifyManifestFile } from '../verify/manifest-files.js';
import type { ManifestPolicy } from '../verify/signature-policy.js';
import { checkManifestPath } from '../verify/verified-plugin.js';
import { launchVerified, type PluginWithVerification, type VerifiedLaunchOptions } from './launch-verified.js';
import { recordRefusal } from './refusal.js';

/** What became of one file found in the plugin directory or listed in the manifest. */
export type CandidateStatus = 'verified' | 'unlisted' | 'unsafe' | 'tampered';

export interface CandidateReport {
  name: string;
  /** The manifest entry's version, when it has one: two signed versions of one plugin differ by it. */
  version?: string;
  path: string;
  status: CandidateStatus;
  /** The error code for every status but `verified`. */
  code?: GatehouseErrorCode;
  message?: string;
}

export interface DiscoverVerifiedOptions {
  manifestPath: string;
  /** Where to look and where the manifest's relative paths resolve (default: the manifest's directory). */
  pluginDir?: string;
  /** tinyglobby patterns, relative to the plugin directory, of files that claim to be plugins (default `*`). */
  patterns?: readonly string[];
  policy: ManifestPolicy;
  /** As in the file-safety checks: the user whose files may be trusted besides root's. */
  uid?: number;
  audit?: AuditLog;
}

const TAMPERED: readonly GatehouseErrorCode[] = ['DIGEST_MISMATCH', 'SIZE_MISMATCH', 'PACKAGE_FILE_UNLISTED', 'PACKAGE_SYMLINK'];

/**
 * Verifies the signed manifest, then reports every candidate: each manifest entry (verified, tampered, or
 * unsafe, with its code) and each file matching `patterns` that the manifest does not list (unlisted).
 * Each candidate is audited as a `discovery` record, and each one that may not run as a `refusal`.
 */
export async function discoverVerified(options: DiscoverVerifiedOptions): Promise<CandidateReport[]> {
  return discoverFor(options, undefined);
}

/** discoverVerified, its refusal of the manifest audited as one of `plugin` when a launch asked for it. */
async function discoverFor(options: DiscoverVerifiedOptions, plugin: string | undefined): Promise<CandidateReport[]> {
  const dir = options.pluginDir ?? dirname(options.manifestPath);
  let verified;
  try {
    checkManifestPath(options.manifestPath);
    verified = await verifyManifestFile(options.manifestPath, options.policy);
  } catch (error) {
    // An unsigned, expired or rolled-back manifest is a refusal like a tampered file: unaudited, it left no trace.
    recordRefusal(options.audit, { ...(plugin === undefined ? {} : { plugin }), manifestPath: options.manifestPath }, error);
    throw error;
  }
  // The manifest and its signatures usually sit in the plugin directory (as `gatehouse install` lays it
  // out): they match `*`, but are no plugins that someone forgot to sign.
  const notPlugins = [options.manifestPath, ...(await findSignatureFiles(options.manifestPath))];
  const results = await verifyPlugins(verified.manifest, dir, {
    patterns: options.patterns ?? ['*'],
    notPlugins,
    ...(options.uid === undefined ? {} : { uid: options.uid }),
  });
  return results.map((result, index): CandidateReport => {
    // The manifest's entries come first, in its order; then the unlisted files.
    const version = verified.manifest.plugins[index]?.version;
    const versioned = version === undefined ? {} : { version };
    const found = { name: result.name, ...versioned, path: result.path };
    options.audit?.record({ type: 'discovery', plugin: result.name, ...versioned, path: result.path });
    if (result.ok) return { ...found, status: 'verified' };
    const { code, message } = result.error;
    recordRefusal(options.audit, { plugin: result.name, ...versioned, manifestPath: options.manifestPath }, result.error);
    const status = code === 'PLUGIN_NOT_IN_MANIFEST' ? 'unlisted' : TAMPERED.includes(code) ? 'tampered' : 'unsafe';
    return { ...found, status, code, message };
  });
}

export type DiscoveredLaunchOptions = VerifiedLaunchOptions & Pick<DiscoverVerifiedOptions, 'patterns' | 'uid'>;

/**
 * Discovery, verification, seal and launch in one call: reports every candidate as
 * {@link discoverVerified}, then launches `plugin` (at `version`, if given) as {@link launchVerified},
 * which verifies its files again while sealing them (they may have changed since the report).
 */
export async function launchDiscovered(options: DiscoveredLaunchOptions): Promise<{ candidates: CandidateReport[]; plugin: PluginWithVerification }> {
  const { patterns, uid, ...launchOptions } = options;
  const candidates = await discoverFor({
    manifestPath: options.manifestPath,
    policy: options.policy,
    ...(options.pluginDir === undefined ? {} : { pluginDir: options.pluginDir }),
    ...(patterns === undefined ? {} : { patterns }),
    ...(uid === undefined ? {} : { uid }),
    ...(options.audit === undefined ? {} : { audit: options.audit }),
  }, options.plugin);
  return { candidates, plugin: await launchVerified(launchOptions) };
}
