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
export { launchVerified, type VerifiedLaunchOptions } from './host/launch-verified.js';
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
export type { ExitStatus } from './host/plugin-process.js';
export { killAllPlugins } from './host/live-plugins.js';
export type { ServiceClient, CallOptions } from './host/service-client.js';

// broker (either side)
export type { Broker, BrokerConnection, DialOptions } from './transport/broker.js';

// plugin
export { serve, type ServeOptions, type ServedPlugin, type PluginService } from './plugin/serve.js';

// audit
export { openAuditLog, verifyAuditLog, type AuditLog, type AuditEvent, type AuditVerification } from './audit/index.js';
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

// verify: what a host and a release tool need (the `packages` branch exports the same names)
export {
  FileRollbackState,
  formatManifest,
  generateKeyPair,
  loadTrustedKeys,
  MANIFEST_SCHEMA,
  parseManifest,
  readPublicKeyFile,
  readSecretKeyFile,
  sha256File,
  signManifest,
  writeKeyPair,
  type Manifest,
  type ManifestPlugin,
  type ManifestPolicy,
  type MinisignPublicKey,
  type MinisignSecretKey,
  type RollbackState,
  type SealOptions,
} from './verify/index.js';
