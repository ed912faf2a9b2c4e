// The public API of gatehouse. Everything not exported here is internal and may change.
export { GatehouseError, isGatehouseError, type GatehouseErrorCode, type GatehouseErrorDetails } from './errors.js';
export { silentLogger, type Logger, type LogFn } from './logger.js';
export type { MagicCookie } from './transport/env.js';
export { DEFAULT_MAX_MESSAGE_BYTES } from './transport/limits.js';
export { CERTIFICATE_VALIDITY_DAYS } from './tls/certificate.js';

// host
export { launch, type LaunchOptions } from './host/launch.js';
export type { IsolationOptions } from './host/isolation.js';
export type { ProcessLimits } from './host/process-limits.js';
export type { SandboxOptions } from './host/sandbox.js';
export { launchVerified, manifestExpiryWarning, type LaunchVerification, type PluginWithVerification, type VerifiedLaunchOptions } from './host/launch-verified.js';
export {
  discoverVerified,
  launchDiscovered,
  type CandidateReport,
  type CandidateStatus,
  type DiscoveredLaunchOptions,
  type DiscoverVerifiedOptions,
} from './host/launch-discovered.js';
export { Plugin, type PluginInfo } from './host/plugin.js';
export type { VersionedServices } from './host/versioned-services.js';
export type { PluginStdio } from './host/plugin-stdio.js';
export { reattach, type ReattachOptions } from './host/reattach.js';
export {
  readReattachRecord,
  writeReattachRecord,
  type ReattachRecord,
  type ReattachRecordOptions,
} from './host/reattach-record.js';
export type { ExitStatus } from './transport/exit-status.js';
export { killAllPlugins } from './host/live-plugins.js';
export {
  PluginSupervisor,
  supervise,
  type RestartPolicy,
  type StartContext,
  type SupervisorEvent,
  type SupervisorOptions,
  type SupervisorState,
  type SupervisorStatus,
} from './host/supervisor.js';
export type {
  ServiceClient,
  CallOptions,
  ClientMethod,
  StreamingUnavailable,
  GeneratedServiceConstructor,
} from './transport/service-client-types.js';
export {
  pluginService,
  type ServiceImplementation,
  type MethodHandler,
  type MethodInput,
  type MethodOutput,
  type ServiceSource,
} from './transport/service.js';

// broker (either side)
export type { Broker, BrokerConnection, DialOptions } from './transport/broker.js';

// plugin
export { serve, type ServeOptions, type ServedPlugin, type PluginService } from './plugin/serve.js';

// audit
export { openAuditLog, verifyAuditLog, type AuditLog, type AuditEvent, type AuditLogOptions, type AuditVerification } from './audit/index.js';
export { checkAuditLog, formatAnchor, MAX_REPORTED_SEGMENTS, parseAnchor, parseSealingKeys, type AuditAnchor, type AuditReport, type AuditSealingOptions, type SealingKey } from './audit/index.js';

// discovery and file safety
export { discover, checkFileSafety, type DiscoverOptions, type DiscoveryResult, type PluginCandidate, type SafeFile, type SafetyOptions } from './discover/index.js';

// manifests, keys, signatures, rollback state and sealing
export {
  createManifest,
  findSignatureFiles,
  formatManifest,
  FileRollbackState,
  generateKeyPair,
  loadTrustedKeys,
  manifestFromSha256Sums,
  MANIFEST_SCHEMA,
  MemoryRollbackState,
  parseManifest,
  parseSha256Sums,
  readPublicKeyFile,
  readSecretKeyFile,
  defaultSealRoot,
  prepareSealRoot,
  removeOwnSealedCopies,
  sealPlugin,
  sha256File,
  signManifest,
  verifyManifest,
  verifyManifestFile,
  verifyPlugins,
  writeKeyPair,
  type CreateManifestOptions,
  type Manifest,
  type ManifestFile,
  type ManifestInterpreter,
  type ManifestPlugin,
  type ManifestPolicy,
  type MinisignPublicKey,
  type MinisignSecretKey,
  type PluginVerification,
  type RollbackState,
  type SealablePlugin,
  type SealedFile,
  type SealedPlugin,
  type SealOptions,
  type SealRootOptions,
  type Sha256SumsEntry,
  type Sha256SumsOptions,
  type VerifiedManifest,
  type VerifiedPluginRequest,
  type VerifyPluginsOptions,
} from './verify/index.js';
export { loadVerifiedManifest, type LoadedManifest, type ManifestEntry } from './verify/verified-manifest.js';
export { sealPluginPackage } from './verify/package-seal.js';
export { selectPlugin, type PluginSelection, type VersionReason } from './verify/versions.js';
export { createPackageEntry, type PackageSpec } from './verify/package-create.js';
export { installRelease, rollbackRelease, verifyInstalled, releasesDir, type InstallOptions, type InstallResult } from './verify/install.js';
export { createRelease } from './verify/release.js';
export { readLockFile, type LockFile, type LockedPlugin, type LockedRelease } from './verify/lock-file.js';
