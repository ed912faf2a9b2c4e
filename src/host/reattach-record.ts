/**
 * The reattach record (go-plugin's ReattachConfig): what reconnecting to a running plugin takes.
 *
 * It holds only public facts: the process, its address, both certificates. The host's private key,
 * without which nobody can reattach (the plugin accepts only the host's certificate), leaves memory
 * only when the caller names a file for it, which is then created 0600.
 */
import { writeFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { derToPem, type EphemeralIdentity } from '../tls/certificate.js';
import { readLimited } from '../verify/untrusted-file.js';
import { processStartTime } from './reattached-process.js';

const RECORD_VERSION = 1;
/** A record is a few KiB; anything much larger is not one. */
const MAX_RECORD_BYTES = 64 * 1024;

export interface ReattachRecord {
  readonly version: typeof RECORD_VERSION;
  readonly name: string;
  readonly pid: number;
  /** The user the plugin runs as, who must own its socket. */
  readonly uid?: number;
  /** Start time of the process (Linux), so that a pid reused by another process is never taken for it. */
  readonly processStartTime?: string;
  readonly network: 'unix' | 'tcp';
  readonly address: string;
  readonly protocolVersion: number;
  /** The plugin's private directory; whoever reattaches removes it once the plugin has exited. */
  readonly socketDir: string;
  /** The plugin's certificate (PEM), pinned again on reattach. */
  readonly pluginCertificate: string;
  /** The host's certificate (PEM), the only one the plugin accepts. */
  readonly hostCertificate: string;
  /** Where the host's private key was written, if the caller asked for it. */
  readonly privateKeyFile?: string;
}

export interface ReattachRecordOptions {
  /**
   * Writes the host's private key (PEM) to this new file, 0600, and names it in the record. Anyone
   * who can read it can call the plugin as the host: ask for it only to reattach from elsewhere.
   */
  privateKeyFile?: string;
}

/** What reattach needs of a running Plugin. */
export interface ReattachSource {
  readonly name: string;
  readonly pid: number;
  readonly network: 'unix' | 'tcp';
  readonly address: string;
  readonly protocolVersion: number;
  readonly socketDir: string;
  readonly identity: EphemeralIdentity | undefined;
  readonly pluginCertificateDer: Buffer | undefined;
  readonly multiplexed: boolean;
  readonly pluginUid: number | undefined;
}

export function reattachFailed(message: string, cause?: unknown): GatehouseError {
  return new GatehouseError('REATTACH_FAILED', message, cause === undefined ? undefined : { cause });
}

export async function createReattachRecord(source: ReattachSource, options: ReattachRecordOptions = {}): Promise<ReattachRecord> {
  if (source.identity === undefined || source.pluginCertificateDer === undefined) {
    throw reattachFailed('a plaintext plugin has no certificates to reattach with');
  }
  if (source.multiplexed) {
    // The plugin accepts one multiplexed connection, the one it has; go-plugin refuses this too.
    throw reattachFailed('a plugin launched with multiplexBroker cannot be reattached');
  }
  let privateKeyFile: string | undefined;
  if (options.privateKeyFile !== undefined) {
    privateKeyFile = options.privateKeyFile;
    if (!isAbsolute(privateKeyFile)) throw new GatehouseError('INVALID_OPTIONS', 'privateKeyFile must be an absolute path');
    // A new file only ('wx'): an existing file, or a symlink planted at the path, is never written through.
    await writeFile(privateKeyFile, source.identity.privateKeyPem, { mode: 0o600, flag: 'wx' }).catch((cause: unknown) => {
      throw reattachFailed(`cannot create the key file ${privateKeyFile}: ${(cause as Error).message}`, cause);
    });
  }
  const startTime = await processStartTime(source.pid);
  return {
    version: RECORD_VERSION,
    name: source.name,
    pid: source.pid,
    ...(source.pluginUid !== undefined ? { uid: source.pluginUid } : {}),
    ...(startTime !== undefined ? { processStartTime: startTime } : {}),
    network: source.network,
    address: source.address,
    protocolVersion: source.protocolVersion,
    socketDir: source.socketDir,
    pluginCertificate: derToPem(source.pluginCertificateDer, 'CERTIFICATE'),
    hostCertificate: source.identity.certificatePem,
    ...(privateKeyFile !== undefined ? { privateKeyFile } : {}),
  };
}

/** Writes a record to a new file, 0600. */
export async function writeReattachRecord(path: string, record: ReattachRecord): Promise<void> {
  await writeFile(path, JSON.stringify(record, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
}

export async function readReattachRecord(path: string): Promise<ReattachRecord> {
  // Bounded while reading, not after: no file can make us hold more than a record's worth.
  const bytes = await readLimited(path, MAX_RECORD_BYTES, 'REATTACH_FAILED').catch((cause: unknown) => {
    throw isGatehouseError(cause, 'REATTACH_FAILED') ? cause : reattachFailed(`cannot read ${path}: ${(cause as Error).message}`, cause);
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw reattachFailed(`${path} is not JSON`, cause);
  }
  return checkRecord(parsed);
}

export function checkRecord(value: unknown): ReattachRecord {
  const record = value as Partial<Record<keyof ReattachRecord, unknown>>;
  const bad = (what: string): never => {
    throw reattachFailed(`not a reattach record: ${what}`);
  };
  if (typeof value !== 'object' || value === null) bad('not an object');
  if (record.version !== RECORD_VERSION) bad(`version must be ${RECORD_VERSION}`);
  for (const key of ['name', 'address', 'socketDir', 'pluginCertificate', 'hostCertificate'] as const) {
    if (typeof record[key] !== 'string') bad(`${key} must be a string`);
  }
  // 0 and 1 would turn kill(-pid) into a signal to our own process group, or to every process we may signal.
  if (!Number.isSafeInteger(record.pid) || (record.pid as number) <= 1) bad('pid must be a process id');
  if (!Number.isSafeInteger(record.protocolVersion) || (record.protocolVersion as number) < 1) bad('protocolVersion');
  if (record.network !== 'unix' && record.network !== 'tcp') bad('network must be "unix" or "tcp"');
  if (record.processStartTime !== undefined && typeof record.processStartTime !== 'string') bad('processStartTime');
  if (record.uid !== undefined && !Number.isSafeInteger(record.uid)) bad('uid');
  if (record.privateKeyFile !== undefined && typeof record.privateKeyFile !== 'string') bad('privateKeyFile');
  if (!isAbsolute(record.socketDir as string)) bad('socketDir must be absolute');
  return value as ReattachRecord;
}
