import { isGatehouseError } from '../errors.js';
import { sealVerifiedPlugin, type VerifiedPluginRequest } from '../verify/verified-plugin.js';
import { launch, type LaunchOptions } from './launch.js';
import type { Plugin } from './plugin.js';

export type VerifiedLaunchOptions = Omit<LaunchOptions, 'command' | 'args' | 'name'> & VerifiedPluginRequest;

/**
 * Launches a manifest entry only after K trusted keys signed the manifest, and runs the sealed copy
 * whose bytes were hashed, never the file in the plugin directory (which could be swapped after the
 * check). The copy is removed once the plugin has exited. Each outcome is audited.
 */
export async function launchVerified(options: VerifiedLaunchOptions): Promise<Plugin> {
  const { manifestPath, plugin: name, pluginDir, policy, seal, version, ...launchOptions } = options;
  let verified;
  try {
    verified = await sealVerifiedPlugin({
      manifestPath,
      plugin: name,
      policy,
      ...(pluginDir ? { pluginDir } : {}),
      ...(seal ? { seal } : {}),
      ...(version === undefined ? {} : { version }),
    });
  } catch (error) {
    options.audit?.record({
      type: 'refusal',
      plugin: name,
      code: isGatehouseError(error) ? error.code : 'UNEXPECTED',
      message: error instanceof Error ? error.message : String(error),
    });
    throw error;
  }
  const { entry, sealed, selection } = verified;
  options.audit?.record({
    type: 'verification',
    plugin: name,
    sha256: sealed.sha256,
    keyIds: verified.verified.signatures.map((signature) => signature.keyId),
    result: 'accepted',
    // Which version ran and why: an auditor can tell a pinned release from the newest in a range.
    ...(entry.version === undefined ? {} : { version: entry.version }),
    ...(selection.requested === undefined ? {} : { requested: selection.requested }),
    reason: selection.reason,
  });
  try {
    const plugin = await launch({
      ...launchOptions,
      name,
      command: sealed.command,
      args: sealed.args,
      ...(launchOptions.protocolVersions === undefined && entry.protocolVersions
        ? { protocolVersions: entry.protocolVersions }
        : {}),
    });
    void plugin.exited.then(() => sealed.dispose());
    return plugin;
  } catch (error) {
    await sealed.dispose();
    throw error;
  }
}
