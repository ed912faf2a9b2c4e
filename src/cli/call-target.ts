/**
 * What `gatehouse call` launches: COMMAND as given, COMMAND sealed against --sha256, or a signed
 * manifest's entry, verified and sealed. A sealed copy, never the original path, is what runs.
 */
import { basename, dirname, resolve } from 'node:path';
import { defaultPluginName } from '../host/launch.js';
import { sealPlugin, type SealedPlugin } from '../verify/seal.js';
import type { CallTarget } from './call-args.js';
import type { FailureContext } from './failures.js';
import { manifestPolicy } from './manifest-policy.js';
import { sealVerifiedPlugin } from '../verify/verified-plugin.js';
import { resolveCommand } from './resolve-command.js';
import { parsePluginRequest } from '../verify/versions.js';

export interface LaunchTarget {
  /** The name plugin logs are labelled with. */
  name: string;
  command: string;
  args: string[];
  /** The manifest entry's protocol versions, if it names any. */
  protocolVersions: number[] | undefined;
  /** Removes the sealed copy; call once the plugin has exited. */
  dispose(): Promise<void>;
}

/** Resolves, verifies and seals the target; failures of the manifest step are reported as "manifest: ...". */
export async function prepareTarget(target: CallTarget, context: FailureContext, sealDir?: string): Promise<LaunchTarget> {
  const seal = sealDir === undefined ? {} : { parentDir: sealDir };
  if ('command' in target) {
    const command = await resolveCommand(target.command);
    if (target.sha256 === undefined) {
      return { name: defaultPluginName(command, target.args), command, args: target.args, protocolVersions: undefined, dispose: async () => {} };
    }
    const name = basename(command);
    return launchTarget(await sealPlugin({ name, path: name, sha256: target.sha256, args: target.args }, dirname(command), seal), undefined);
  }
  context.stage = 'manifest';
  // --plugin NAME@RANGE: the highest signed version in the range (or the pinned one) runs.
  const { name, version } = parsePluginRequest(target.plugin);
  const { entry, sealed } = await sealVerifiedPlugin({
    // Resolved like COMMAND: relative to the working directory, then absolute for the library.
    manifestPath: resolve(target.manifest.manifest),
    plugin: name,
    ...(version === undefined ? {} : { version }),
    policy: await manifestPolicy(target.manifest),
    seal,
  });
  context.stage = undefined;
  return launchTarget(sealed, entry.protocolVersions);
}

/** The sealed copy is what runs, never the original: the bytes executed are the bytes hashed. */
function launchTarget(sealed: SealedPlugin, protocolVersions: number[] | undefined): LaunchTarget {
  return { name: sealed.name, command: sealed.command, args: sealed.args, protocolVersions, dispose: () => sealed.dispose() };
}
