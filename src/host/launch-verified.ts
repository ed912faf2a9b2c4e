import { dirname, resolve } from 'node:path';
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
  const { manifestPath, plugin: name, pluginDir, policy, seal, ...launchOptions } = options;
  let verified;
  try {
    verified = await sealVerifiedPlugin({ manifestPath, plugin: name, policy, ...(pluginDir ? { pluginDir } : {}), ...(seal ? { seal } : {}) });
  } catch (error) {
    options.audit?.record({
      type: 'refusal',
      plugin: name,
      code: isGatehouseError(error) ? error.code : 'UNEXPECTED',
      message: error instanceof Error ? error.message : String(error),
    });
    throw error;
  }
  const { entry, sealed } = verified;
  // docs/audit.md's discovery record: which file the entry named, before the verdict on its bytes.
  options.audit?.record({ type: 'discovery', plugin: name, path: resolve(pluginDir ?? dirname(manifestPath), entry.path) });
  options.audit?.record({
    type: 'verification',
    plugin: name,
    sha256: sealed.sha256,
    keyIds: verified.verified.signatures.map((signature) => signature.keyId),
    result: 'accepted',
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
