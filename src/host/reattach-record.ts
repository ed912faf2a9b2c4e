/**
 * The reattach record (go-plugin's ReattachConfig): what reconnecting to a running plugin takes.
 *
 * It holds only public facts: the process, its address, both certificates. The host's private key,
 * without which nobody can reattach (the plugin accepts only the host's certificate), leaves memory
 * only when the caller names a file for it, which is then created 0600. Every field is bound to that
 * key by a MAC, so a record changed by anyone without the key is refused.
 */
import { createHmac, createPrivateKey, timingSafeEqual } from 'node:crypto';
import type { Stats } from 'node:fs';
import { isAbsolute } from 'node:path';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { derToPem, type EphemeralIdentity } from '../tls/certificate.js';
import { writeNewFile } from '../verify/atomic-file.js';
import { readLimited } from '../discover/untrusted-file.js';
import { processStartTime } from '../process-identity.js';

/** 2: the start time and the MAC are required. */
const RECORD_VERSION = 2;
/** A record is a few KiB; anything much larger is not one. */
const MAX_RECORD_BYTES = 64 * 1024;

export interface ReattachRecord {
  readonly version: typeof RECORD_VERSION;
  readonly name: string;
  readonly pid: number;
  /** The user the plugin runs as, who must own its socket. */
  readonly uid?: number;
  /** Start time of the process (Linux), so that a pid reused by another process is never taken for it. */
  readonly processStartTime: string;
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
  /** HMAC-SHA256 (hex) of every other field, keyed by the host's private key. */
  readonly mac: string;
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
    // A new file only: an existing file, or a symlink planted at the path, is never written through.
    await writeNewFile(privateKeyFile, source.identity.privateKeyPem, 0o600).catch((cause: unknown) => {
      throw reattachFailed(`cannot create the key file ${privateKeyFile}: ${(cause as Error).message}`, cause);
    });
  }
  const startTime = await processStartTime(source.pid);
  if (startTime === undefined) throw reattachFailed(`cannot read the start time of pid ${source.pid} (reattach needs Linux /proc)`);
  const fields: Omit<ReattachRecord, 'mac'> = {
    version: RECORD_VERSION,
    name: source.name,
    pid: source.pid,
    ...(source.pluginUid !== undefined ? { uid: source.pluginUid } : {}),
    processStartTime: startTime,
    network: source.network,
    address: source.address,
    protocolVersion: source.protocolVersion,
    socketDir: source.socketDir,
    pluginCertificate: derToPem(source.pluginCertificateDer, 'CERTIFICATE'),
    hostCertificate: source.identity.certificatePem,
    ...(privateKeyFile !== undefined ? { privateKeyFile } : {}),
  };
  return { ...fields, mac: recordMac(fields, source.identity.privateKeyPem) };
}

/** The MAC of a record's fields (all but `mac`, in a fixed order), keyed by the host's private key. */
export function recordMac(record: Omit<ReattachRecord, 'mac'>, privateKeyPem: string): string {
  const key = createPrivateKey(privateKeyPem).export({ type: 'pkcs8', format: 'der' });
  const hmac = createHmac('sha256', key);
  key.fill(0);
  const order = ['version', 'name', 'pid', 'uid', 'processStartTime', 'network', 'address', 'protocolVersion', 'socketDir', 'pluginCertificate', 'hostCertificate', 'privateKeyFile'] as const;
  hmac.update('gatehouse reattach record\0');
  hmac.update(JSON.stringify(order.map((field) => record[field] ?? null)));
  return hmac.digest('hex');
}

/**
 * Checks that the record was made with this key.
 * Attack: a record edited (by whoever could write it, or a caller passing an object) to send the host's
 * calls to another server, signal another process or remove another directory.
 */
export function checkRecordMac(record: ReattachRecord, privateKeyPem: string): void {
  const expected = Buffer.from(recordMac(record, privateKeyPem), 'hex');
  const given = Buffer.from(record.mac, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw reattachFailed(`the reattach record for ${record.name} was not made with this host key, or was changed since`);
  }
}

/**
 * Reads a file only we may read or write: owned by us, no access for group or others, not a symlink.
 * Checked on the open descriptor, not the path: a file swapped in after the check is never read.
 */
export async function readPrivateFile(path: string, maxBytes: number, what: string): Promise<Buffer> {
  const check = (stats: Stats): void => {
    if (stats.uid !== process.getuid?.()) throw reattachFailed(`the ${what} ${path} belongs to uid ${stats.uid}, not to us`);
    if ((stats.mode & 0o077) !== 0) {
      throw reattachFailed(`the ${what} ${path} is open to others (mode ${(stats.mode & 0o777).toString(8)}): it must be 0600`);
    }
  };
  return readLimited(path, maxBytes, 'REATTACH_FAILED', check).catch((cause: unknown) => {
    throw isGatehouseError(cause, 'REATTACH_FAILED') ? cause : reattachFailed(`cannot read the ${what} ${path}: ${(cause as Error).message}`, cause);
  });
}

/** Writes a record to a new file, 0600, whole or not at all. */
export async function writeReattachRecord(path: string, record: ReattachRecord): Promise<void> {
  await writeNewFile(path, JSON.stringify(record, null, 2) + '\n', 0o600, 'a reattach record');
}

export async function readReattachRecord(path: string): Promise<ReattachRecord> {
  // Bounded while reading, not after: no file can make us hold more than a record's worth.
  // Attack: a record another user owns or may write, naming their server, process or directory.
  const bytes = await readPrivateFile(path, MAX_RECORD_BYTES, 'reattach record');
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
  // Without it, a pid the kernel gave to another process would be taken for the plugin.
  if (typeof record.processStartTime !== 'string' || !/^[0-9]{1,20}$/.test(record.processStartTime)) bad('processStartTime must be given');
  if (typeof record.mac !== 'string' || !/^[0-9a-f]{64}$/.test(record.mac)) bad('mac must be 64 hex digits');
  if (record.uid !== undefined && !Number.isSafeInteger(record.uid)) bad('uid');
  if (record.privateKeyFile !== undefined && typeof record.privateKeyFile !== 'string') bad('privateKeyFile');
  if (!isAbsolute(record.socketDir as string)) bad('socketDir must be absolute');
  return value as ReattachRecord;
}
