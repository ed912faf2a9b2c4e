import type { AuditedFile } from '../audit/audit-log.js';
import { dirname, resolve } from 'node:path';
import { GatehouseError } from '../errors.js';
import { silentLogger } from '../logger.js';
import type { ManifestPlugin } from '../verify/manifest.js';
import { checkCodeLoadingEnv } from '../verify/code-loading-env.js';
import { newReleaseAdvice } from '../verify/signature-policy.js';
import { sealVerifiedPlugin, type VerifiedPluginRequest } from '../verify/verified-plugin.js';
import { resolveRunAs, type IsolationOptions } from './isolation.js';
import { launch, type LaunchOptions } from './launch.js';
import { removeAtExit } from './live-plugins.js';
import type { Plugin } from './plugin.js';
import { recordRefusal } from './refusal.js';

export type VerifiedLaunchOptions = Omit<LaunchOptions, 'command' | 'args' | 'name'> &
  VerifiedPluginRequest & {
    /**
     * Variables of `env` that load code (LD_PRELOAD, NODE_OPTIONS, PYTHONPATH, BASH_ENV...: the list is in
     * docs/manifest.md) that the caller passes on purpose, knowing the plugin then runs code that its
     * manifest does not list. Without it, such a variable is refused with UNVERIFIED_CODE_ENV.
     */
    allowUnverifiedCodeEnv?: readonly string[];
    /**
     * Within this many ms of the manifest's expiry, every start logs a warning (default a week; 0: never). An
     * expired manifest is refused, restarts included, so a supervised plugin that crashes after it stays down.
     */
    expiryWarningMs?: number;
  };

const DAY_MS = 86_400_000;
const DEFAULT_EXPIRY_WARNING_MS = 7 * DAY_MS;

/** What a verified launch accepted: the same facts as its `verification` audit record. */
export interface LaunchVerification {
  /** SHA-256 of the plugin's own file, as sealed and run. */
  sha256: string;
  /** The trusted keys whose signatures made the threshold. */
  keyIds: readonly string[];
  manifestVersion: number;
  manifestSha256: string;
  /** When the manifest stops being accepted (its `expires`): no start of this plugin after it, restarts included. */
  manifestExpires: string;
  /** The entry's version, when the manifest gives one. */
  version?: string;
  /** Every file that runs, with the digest it was held to. */
  files: readonly AuditedFile[];
}

/** A plugin started by {@link launchVerified}, with what was verified before it ran. */
export type PluginWithVerification = Plugin & { readonly verification: LaunchVerification };

/**
 * Launches a manifest entry only after K trusted keys signed the manifest, and runs the sealed copy
 * whose bytes were hashed, never the file in the plugin directory (which could be swapped after the
 * check). The copy is removed once the plugin has exited. Each outcome is audited.
 */
export async function launchVerified(options: VerifiedLaunchOptions): Promise<PluginWithVerification> {
  const { manifestPath, plugin: name, pluginDir, policy, seal, version, allowUnverifiedCodeEnv, expiryWarningMs, ...launchOptions } = options;
  let verified;
  try {
    const warnWithinMs = expiryWarningMs ?? DEFAULT_EXPIRY_WARNING_MS;
    if (!Number.isFinite(warnWithinMs) || warnWithinMs < 0) {
      throw new GatehouseError('INVALID_OPTIONS', `expiryWarningMs must be a number of ms, 0 or more (0: no warning), got ${String(expiryWarningMs)}`);
    }
    // Before anything is sealed or spawned: the environment must not load code the manifest does not list.
    checkCodeLoadingEnv(launchOptions.env, allowUnverifiedCodeEnv);
    // Checked before the copy is made for them: a group that is no id would fail the seal's chown as a full disk would.
    resolveRunAs(launchOptions);
    // A plugin run as another user must read and execute its copy (through its group), never write it.
    const otherUser = launchOptions.user !== undefined && launchOptions.user !== process.geteuid?.();
    const sealOptions = otherUser && launchOptions.group !== undefined ? { ...seal, group: launchOptions.group } : seal;
    verified = await sealVerifiedPlugin({
      manifestPath,
      plugin: name,
      policy,
      ...(pluginDir ? { pluginDir } : {}),
      ...(sealOptions ? { seal: sealOptions } : {}),
      ...(version === undefined ? {} : { version }),
    });
  } catch (error) {
    // Which manifest was refused: a rollback or expiry message alone does not say.
    recordRefusal(options.audit, { plugin: name, ...(version === undefined ? {} : { version }), manifestPath }, error);
    throw error;
  }
  const { entry, sealed, selection } = verified;
  // docs/audit.md's discovery record: which file the entry named, before the verdict on its bytes.
  options.audit?.record({ type: 'discovery', plugin: name, path: resolve(pluginDir ?? dirname(manifestPath), entry.path) });
  const verification: LaunchVerification = {
    sha256: sealed.sha256,
    keyIds: verified.verified.signatures.map((signature) => signature.keyId),
    // So an auditor can tell exactly which release, and which bytes of it, ran.
    manifestVersion: verified.verified.manifest.version,
    manifestSha256: verified.verified.sha256,
    manifestExpires: verified.verified.manifest.expires,
    ...(entry.version === undefined ? {} : { version: entry.version }),
    files: runningFiles(entry),
  };
  options.audit?.record({
    type: 'verification',
    plugin: name,
    manifestPath,
    ...verification,
    result: 'accepted',
    // Which version ran and why: an auditor can tell a pinned release from the newest in a range.
    ...(selection.requested === undefined ? {} : { requested: selection.requested }),
    reason: selection.reason,
    // The private copy (fresh per launch) that the launch record's argv runs: ties this verdict to that process.
    sealedPath: sealed.dir,
  });
  warnOfExpiry(options, verification);
  // A host that exits (or is signalled) while the plugin runs never sees it exit: its exit hook removes the copy.
  const forget = removeAtExit(sealed.dir);
  try {
    const plugin = await launch({
      ...launchOptions,
      name,
      command: sealed.command,
      args: sealed.args,
      sandbox: withSealedCopy(launchOptions.sandbox, sealed.dir),
      ...(launchOptions.protocolVersions === undefined && entry.protocolVersions
        ? { protocolVersions: entry.protocolVersions }
        : {}),
    });
    void plugin.exited.then(() => sealed.dispose()).then(forget);
    return Object.assign(plugin, { verification });
  } catch (error) {
    await sealed.dispose();
    forget();
    throw error;
  }
}

/**
 * An expired manifest stops every start, restarts included: a supervised plugin that crashes after its manifest
 * expired stays down. Said at each start within the window, in time to sign a new release.
 */
function warnOfExpiry(options: VerifiedLaunchOptions, verification: LaunchVerification): void {
  const warning = manifestExpiryWarning(options.plugin, verification, { now: options.policy.now, withinMs: options.expiryWarningMs });
  if (warning === undefined) return;
  (options.logger ?? silentLogger).warn({ plugin: options.plugin, manifestVersion: verification.manifestVersion, expires: verification.manifestExpires }, warning);
}

/**
 * What a host tells its operator about the manifest a running plugin was verified against, when it expires within
 * `withinMs` (default a week) of `now` or has expired; undefined otherwise. launchVerified says it at each start, but
 * a plugin that runs for weeks is not started again in the week before: a host that shows its plugins' state
 * (a status page, a health check) asks this each time, so the warning is seen before the next restart fails.
 */
export function manifestExpiryWarning(
  plugin: string,
  verification: Pick<LaunchVerification, 'manifestVersion' | 'manifestExpires'>,
  options: { now?: Date | undefined; withinMs?: number | undefined } = {},
): string | undefined {
  const left = Date.parse(verification.manifestExpires) - (options.now ?? new Date()).getTime();
  if (!(left < (options.withinMs ?? DEFAULT_EXPIRY_WARNING_MS))) return undefined;
  const advice = newReleaseAdvice(verification.manifestVersion);
  if (left <= 0) {
    return `manifest version ${verification.manifestVersion} expired at ${verification.manifestExpires}: ${plugin} runs on, but will not start again, restarts included; ${advice}`;
  }
  const hours = Math.floor(left / 3_600_000);
  const days = Math.floor(hours / 24);
  const inTime = days > 0 ? `${days} day${days === 1 ? '' : 's'}, ${hours % 24} h` : hours > 0 ? `${hours} h` : `${Math.max(1, Math.ceil(left / 60_000))} min`;
  return `manifest version ${verification.manifestVersion} expires at ${verification.manifestExpires} (in ${inTime}): ${plugin} will not start again after that, restarts included; ${advice}`;
}

/**
 * A sandbox sees only what it is given, and the sandbox binds the command alone: a script, its modules
 * and a package's containment hook are in the sealed directory, which it must see too (read-only).
 */
function withSealedCopy(sandbox: IsolationOptions['sandbox'], sealedDir: string): IsolationOptions['sandbox'] {
  if (sandbox === undefined || sandbox === false) return sandbox;
  const settings = sandbox === true ? {} : sandbox;
  return { ...settings, readOnlyPaths: [...(settings.readOnlyPaths ?? []), sealedDir] };
}

/** Every file of a manifest entry that runs, with the digest sealing held it to (the plugin's own first). */
function runningFiles(entry: ManifestPlugin): AuditedFile[] {
  const files: AuditedFile[] = [{ path: entry.path, sha256: entry.sha256, role: 'plugin' }];
  for (const file of entry.files ?? []) files.push({ path: file.path, sha256: file.sha256, role: 'file' });
  if (entry.interpreter) files.push({ path: entry.interpreter.path, sha256: entry.interpreter.sha256 ?? null, role: 'interpreter' });
  return files;
}
