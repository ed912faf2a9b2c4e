/**
 * Reattach: connect to a plugin that is still running, from another Plugin object or another host
 * process, with the certificates of the connection that started it (go-plugin's Reattach).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { AuditLog } from '../audit/index.js';
import { silentLogger, type Logger } from '../logger.js';
import { certificateFingerprint, type EphemeralIdentity } from '../tls/certificate.js';
import { hostTls } from '../tls/pinning.js';
import { checkAnnouncedAddress } from '../transport/handshake.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../transport/limits.js';
import { connectPlugin, pinnedPluginCredentials } from './connection.js';
import { HostSocketDir } from './host-socket-dir.js';
import { linkPluginSocket } from './plugin-socket.js';
import { Plugin } from './plugin.js';
import { PluginStderr, stdoutToLogger } from './plugin-output.js';
import type { PluginStdio } from './plugin-stdio.js';
import { checkRecord, checkRecordMac, readPrivateFile, readReattachRecord, reattachFailed, type ReattachRecord } from './reattach-record.js';
import { ReattachedProcess } from './reattached-process.js';
import { checkVersionedServices, OfferedServices, type CheckedVersions, type VersionedServices } from './versioned-services.js';

const DEFAULT_KILL_GRACE_MS = 2_000;
const CONNECT_TIMEOUT_MS = 10_000;

export interface ReattachOptions {
  /** The host's private key (PEM); read from the record's privateKeyFile when not given. */
  privateKeyPem?: string;
  logger?: Logger;
  killGraceMs?: number;
  maxMessageBytes?: number;
  channelOptions?: grpc.ChannelOptions;
  serverOptions?: grpc.ServerOptions;
  onStdoutLine?: (line: string) => void;
  stdio?: PluginStdio;
  versions?: VersionedServices;
  audit?: AuditLog;
}

/** A PEM private key is a few hundred bytes. */
const MAX_KEY_FILE_BYTES = 16 * 1024;

/** The key file must be ours and private: one others can read has leaked the host's identity. */
async function readKeyFile(path: string): Promise<string> {
  const bytes = await readPrivateFile(path, MAX_KEY_FILE_BYTES, 'key file');
  try {
    return bytes.toString('utf8');
  } finally {
    bytes.fill(0);
  }
}

function identityFrom(record: ReattachRecord, privateKeyPem: string): EphemeralIdentity {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(record.hostCertificate);
    // The key must be the certificate's: TLS would otherwise fail later with a less useful error.
    if (!certificate.checkPrivateKey(createPrivateKey(privateKeyPem))) throw new Error('the key does not match');
  } catch (cause) {
    throw reattachFailed(`the host's private key and certificate do not belong together: ${(cause as Error).message}`, cause);
  }
  return {
    certificateDer: certificate.raw,
    certificatePem: record.hostCertificate,
    privateKeyPem,
    notAfter: new Date(certificate.validTo),
  };
}

/**
 * Connects to a plugin that is still running, pinned to the certificate in the record, and returns a
 * Plugin that controls it as launch() would have (calls, broker, kill). Like a launched plugin, it is
 * stopped when this host exits: no plugin outlives the hosts that hold it.
 */
export async function reattach(recordOrPath: ReattachRecord | string, options: ReattachOptions = {}): Promise<Plugin> {
  // Checked before anything is read or reached: a wrong entry must not fail after the plugin is connected.
  const versions = options.versions === undefined ? undefined : checkVersionedServices(options.versions, 'reattach()');
  const record = typeof recordOrPath === 'string' ? await readReattachRecord(recordOrPath) : checkRecord(recordOrPath);
  const privateKeyPem =
    options.privateKeyPem ??
    (record.privateKeyFile !== undefined
      ? await readKeyFile(record.privateKeyFile)
      : undefined);
  if (privateKeyPem === undefined) {
    throw reattachFailed("reattach needs the host's private key: pass privateKeyPem, or a record made with privateKeyFile");
  }
  // The key must match the record's host certificate (a key of another identity is named as such); then
  // the MAC, before any other field is used (the pid, the address, the pinned certificate, the directory).
  // Only the key file the record names is read before, under the key file's own checks.
  const identity = identityFrom(record, privateKeyPem);
  checkRecordMac(record, privateKeyPem);
  const pluginCertificateDer = new X509Certificate(record.pluginCertificate).raw;

  const running = new ReattachedProcess(record.pid, record.processStartTime);
  try {
    return await reconnect(record, running, identity, pluginCertificateDer, options, versions);
  } catch (error) {
    // A failed reattach must not leave its poll of the process running: the host could not exit while the plugin lived.
    running.close();
    throw error;
  }
}

/** The rest of reattach(), once the process is watched: any failure here stops that watch. */
async function reconnect(
  record: ReattachRecord,
  running: ReattachedProcess,
  identity: EphemeralIdentity,
  pluginCertificateDer: Buffer,
  options: ReattachOptions,
  versions: CheckedVersions | undefined,
): Promise<Plugin> {
  if (!(await running.isSameProcess())) {
    throw reattachFailed(`plugin ${record.name} (pid ${record.pid}) is no longer running`);
  }
  const network = checkAnnouncedAddress(record.network, record.address);
  const socket = await linkPluginSocket({ network, address: record.address }, record.uid, Date.now() + CONNECT_TIMEOUT_MS);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const channelOptions = options.channelOptions ?? {};
  const credentials = pinnedPluginCredentials(hostTls(identity), pluginCertificateDer);
  const connection = await connectPlugin(
    { network, address: socket.address, release: socket.release },
    credentials,
    Date.now() + CONNECT_TIMEOUT_MS,
    maxMessageBytes,
    channelOptions,
  ).catch((cause: unknown) => {
    throw reattachFailed(`cannot reconnect to plugin ${record.name}: ${(cause as Error).message}`, cause);
  });
  const logger = options.logger ?? silentLogger;
  return new Plugin(
    {
      name: record.name,
      protocolVersion: record.protocolVersion,
      network,
      address: record.address,
      certificateSha256: certificateFingerprint(pluginCertificateDer),
    },
    running,
    connection,
    record.socketDir,
    options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
    logger,
    options.audit,
    {
      identity,
      pluginCertificateDer,
      maxMessageBytes,
      channelOptions,
      serverOptions: options.serverOptions ?? {},
      stdio: {
        writers: options.stdio ?? {},
        onStdoutLine: options.onStdoutLine ?? stdoutToLogger(logger, record.name),
        // The plugin's stderr pipe went to the host that started it; what it forwards lands in the logger.
        stderr: new PluginStderr(record.name, logger),
      },
      hostSockets: new HostSocketDir(undefined),
      ...(record.uid !== undefined ? { pluginUid: record.uid } : {}),
      ...(versions ? { offered: new OfferedServices(versions, record.protocolVersion) } : {}),
    },
  );
}
