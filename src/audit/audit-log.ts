/**
 * An append-only, hash-chained JSON-lines log of security events (format in verify-log.ts and docs/audit.md).
 *
 * `record()` never blocks and never throws: it serializes the event at once (so a caller mutating its
 * argv later cannot change what was recorded), queues the line and returns. One background loop writes
 * the queue in order.
 *
 * Durability (fsync policy): the loop takes everything queued, writes it as one batch and fsyncs the
 * file before taking the next batch, so records that arrive during a write+fsync are committed together
 * (group commit). `flush()` resolves once every record made before it is fsynced; `close()` flushes.
 * A newly created log also has its directory fsynced, so the file itself survives a crash.
 * A crash (process or power) can therefore lose only the records not yet fsynced: those made during
 * the last write+fsync in flight and those still queued. It can leave a partial last line; the log then
 * fails verification at that line and is not appended to until a person looks at it.
 *
 * What is never recorded: environment variables (they carry the mTLS certificate and the magic cookie),
 * keys, or any secret. argv is recorded: do not pass secrets to plugins on their command line.
 *
 * One writer per file: two processes appending to the same log would fork its chain (claimWriter refuses a second).
 *
 * Sealing (optional, `sealing`): every N records or T seconds, and on close, the log appends a checkpoint
 * signed by the current epoch's Ed25519 key, which then makes way for the next (sealing.ts).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, fsyncSync, openSync, readSync, writeSync, type Stats } from 'node:fs';
import { lstat, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { checkDirectory, effectiveUid, resolveChecked } from '../discover/file-safety.js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { holderHolds, holdLease, LEASE_EXPIRY_MS, LEASE_REFRESH_MS, PID_SCOPE_PATTERN, selfIdentity } from '../process-identity.js';
import { auditHostIdentity } from './host-identity.js';
import { CHECKPOINT_TYPE, formatSealingKey, MAX_SEALING_KEY_FILE_BYTES, parseKeyLines, Sealer, type SealingKey } from './sealing.js';
import {
  checkLink,
  FORMAT_VERSION,
  GENESIS_TYPE,
  genesisPrev,
  MAX_LINE_BYTES,
  parseRecordLine,
  REOPENED_TYPE,
  sealLine,
  sha256Hex,
} from './verify-log.js';

/** The security events gatehouse records. `plugin` names the plugin as the host knows it (its path or name). */
export type AuditEvent =
  | { type: 'discovery'; plugin: string; version?: string; path: string }
  | {
      type: 'verification';
      plugin: string;
      /** The signed manifest the entry came from, as the host named it. */
      manifestPath?: string;
      sha256: string;
      keyIds: readonly string[];
      result: 'accepted' | 'rejected';
      /** The signed manifest the decision rests on. */
      manifestVersion?: number;
      manifestSha256?: string;
      /** Every file that runs, with its verified digest (null: a system interpreter the manifest does not pin). */
      files?: readonly AuditedFile[];
      /** The entry's version, what was asked for (range or pin), and why this entry was chosen. */
      version?: string;
      requested?: string;
      reason?: 'only' | 'pin' | 'range' | 'highest';
      /** The sealed copy's private directory, from which the next launch record of this plugin runs. */
      sealedPath?: string;
    }
  | { type: 'launch'; plugin: string; pid: number; argv: readonly string[]; uid?: number; gid?: number; sealedPath?: string }
  | { type: 'handshake'; plugin: string; pid?: number; protocolVersion: number; network: string; address: string }
  | { type: 'connected'; plugin: string; pid?: number; peerCertificateSha256: string }
  | { type: 'kill'; plugin: string; pid: number; method: 'shutdown' | 'SIGTERM' | 'SIGKILL'; reason?: 'host exiting' }
  | { type: 'exit'; plugin: string; pid: number; code: number | null; signal: string | null; stoppedByHost?: boolean }
  /** `plugin` is absent when a whole manifest was refused before any plugin was asked for (discoverVerified). */
  | { type: 'refusal'; plugin?: string; version?: string; code: string; message: string; manifestPath?: string; file?: string; found?: string; signed?: string }
  | { type: 'supervisor'; plugin: string; event: string; pid?: number; reason?: string; code?: string }
  /** A host application's own event (a request it served, say); `fields` must never hold a secret in clear. */
  | { type: 'host'; action: string; fields: Readonly<Record<string, string | number | boolean | null>> };

/** A file that runs, by its path in the manifest (relative to the plugin directory, or absolute). */
export interface AuditedFile {
  path: string;
  sha256: string | null;
  role: 'plugin' | 'file' | 'interpreter';
}

export interface AuditLogOptions {
  /** Called on the first write failure (after which the log records nothing more) and for a record() after close(). */
  onError?: (error: GatehouseError) => void;
  logger?: Logger;
  /**
   * How many bytes may wait for the disk (default 64 MiB). Beyond it records are dropped and the next
   * record that fits is preceded by a `records-dropped` record with their count.
   */
  maxQueuedBytes?: number;
  /** Forward-secure sealing; off when absent. */
  sealing?: AuditSealingOptions;
}

export interface AuditSealingOptions {
  /**
   * Where the first public key of each segment (this open of the log) is appended, one line each
   * (`gatehouse-audit-sealing-key v1 LOGID SEQ EVERY KEY`); copy it somewhere the host cannot write, as soon as
   * it is written. `gatehouse audit verify --sealing-key FILE` needs the copy.
   */
  keyFile: string;
  /** Checkpoint after this many records (default 100). */
  everyRecords?: number;
  /** Checkpoint this often, in seconds, when records were made since the last one (default 10). */
  everySeconds?: number;
  /** Given each segment's key line, e.g. to ship it off the host at once. */
  onSealingKey?: (keyLine: string) => void;
}

export interface AuditLog {
  /** Queues `event`; returns at once and never throws. Failures go to `onError` and to `flush()`. */
  record(event: AuditEvent): void;
  /**
   * For a process that is exiting (an exit hook cannot wait): writes `event`, and a checkpoint when the log
   * is sealed, synchronously, fsynced, after the write in flight (waited for, at most a second) and every record
   * still queued. Returns false, writing nothing, when that write does not land in time or the log has failed
   * or is closed. A custom log may leave it out.
   */
  recordAtExit?(event: AuditEvent): boolean;
  /**
   * Resolves once every record made before the call is fsynced; rejects with the write failure, if any, or with
   * AUDIT_RECORDS_DROPPED when records made since the last flush() were dropped for the backlog cap.
   */
  flush(): Promise<void>;
  /** Flushes, then closes the file. Rejects with the write failure, if any. */
  close(): Promise<void>;
  /** The write failure that stopped the log, once there is one: `launch()` then starts nothing. A custom log may leave it out. */
  readonly failure?: GatehouseError | undefined;
}

const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;
const DEFAULT_SEAL_EVERY_RECORDS = 100;
const DEFAULT_SEAL_EVERY_SECONDS = 10;
/** Fields the log itself sets; an event carrying them (from untyped code) must not override them. */
const RESERVED_FIELDS = new Set(['seq', 'time', 'type', 'prev', 'hash']);
const DROPPED_TYPE = 'records-dropped';
const TOO_LARGE_TYPE = 'record-too-large';
const UNSERIALIZABLE_TYPE = 'record-unserializable';
/** What an event whose type is not one an event may have is recorded as, its type kept (bounded) in `originalType`. */
const INVALID_TYPE = 'record-invalid-type';
/** The types of the records the log writes itself: an event of one of them would be taken for one (or break the log). */
const LOG_TYPES = new Set([GENESIS_TYPE, REOPENED_TYPE, CHECKPOINT_TYPE, DROPPED_TYPE, TOO_LARGE_TYPE, UNSERIALIZABLE_TYPE, INVALID_TYPE]);
/** The longest event type; a longer one is cut to this in `originalType`. */
const MAX_TYPE_LENGTH = 64;
const NEWLINE = 0x0a;
/** How long recordAtExit waits for a write in flight to land: a dying host can spare that for its last records. */
const AT_EXIT_WAIT_MS = 1000;
/**
 * How long a writer's own mark, once found intact, is taken to still be: far below the LEASE_EXPIRY_MS it would take
 * another host to judge it lapsed, since the writer refreshes it every LEASE_REFRESH_MS while it runs.
 */
const MARK_RECHECK_MS = 1000;
const NEWLINE_BYTES = Buffer.from('\n');

/** An event's type as it may be recorded or shown: cut to MAX_TYPE_LENGTH, or what it is when not a string. */
function boundedType(type: unknown): string {
  return typeof type === 'string' ? type.slice(0, MAX_TYPE_LENGTH) : `(${typeof type})`;
}

interface Queued {
  bytes: Buffer;
  seq: number;
}

/**
 * Opens (creating it 0600 if absent) the audit log at `path`. A new log starts with an
 * `audit-log-opened` record; an existing one must end in a valid record (AUDIT_INVALID otherwise),
 * and continues its chain after an `audit-log-reopened` record. Resolves once that first record is fsynced.
 */
export async function openAuditLog(path: string, options: AuditLogOptions = {}): Promise<AuditLog> {
  const sealing = options.sealing === undefined ? undefined : sealingSettings(options.sealing);
  await checkTrailDirectories(path, sealing?.keyFile);
  const { mark, notClosedBy } = await claimWriter(path);
  let handle: FileHandle | undefined;
  let seal: SegmentSeal | undefined;
  let log: FileAuditLog | undefined;
  try {
    let created: boolean;
    ({ handle, created } = await openFile(path));
    const stats = await handle.stat();
    // A FIFO or device would block or swallow the writes; only a regular file holds a trail.
    if (!stats.isFile()) throw new GatehouseError('AUDIT_INVALID', `audit log ${path} is not a regular file`);
    // A log pre-created by another user stays theirs, and anyone who can write it can rewrite the whole
    // chain consistently: either could forge the trail we append to.
    const problem = sharedFileProblem(stats);
    if (problem !== undefined) throw new GatehouseError('AUDIT_INVALID', `audit log ${path} is ${problem}; move it away and start a new log`);
    const tail = stats.size === 0 ? undefined : await readTail(handle, path, stats.size);
    const genesis = tail === undefined ? undefined : await readGenesis(handle, path);
    // A log is sealed from its first record or not at all: the verifier (given the key file) refuses an unsealed
    // segment, so either change would leave a log that never verifies again; starting anew keeps the boundary plain.
    if (genesis !== undefined && genesis.sealed !== (sealing !== undefined)) {
      throw new GatehouseError(
        'AUDIT_INVALID',
        genesis.sealed
          ? `audit log ${path} was started with sealing; appending without it would leave every later record unsealed and the log failing verification with its key file: open it with sealing, or move it aside and start a new log`
          : `audit log ${path} was started without sealing, so no checkpoint could cover its earlier records and it would fail verification with a key file: move it aside (it still verifies on its own) and start a new log to seal`,
      );
    }
    const logId = genesis?.logId ?? randomBytes(16).toString('hex');
    const logger = options.logger ?? silentLogger;
    let orphans: SealingKey[] = [];
    if (sealing !== undefined) {
      const sealer = new Sealer();
      // The key is on disk before any record it seals: a segment whose key was lost could never be checked.
      const segmentKey = await appendSegmentKey(sealing.keyFile, logId, tail?.seq ?? 0, sealing.everyRecords, sealer.firstKey, logger);
      orphans = segmentKey.orphans;
      logger.info({ path, keyFile: sealing.keyFile, sealingKey: segmentKey.keyLine }, 'audit log sealing key for this segment: keep a copy off this host');
      sealing.onSealingKey?.(segmentKey.keyLine);
      seal = { sealer, everyRecords: sealing.everyRecords, everySeconds: sealing.everySeconds };
    }
    if (created) await syncDirectory(path);
    log = new FileAuditLog(path, handle, mark, logId, tail, stats.size, orphans, options, seal, notClosedBy);
    await log.flush();
    return log;
  } catch (error) {
    // A log that failed to open must not go on in the background: no timer, no key, no late onError.
    log?.abandon();
    seal?.sealer.destroy();
    await handle?.close();
    if (mark !== undefined) await rm(mark.path, { force: true });
    throw error;
  }
}

interface SegmentSeal {
  sealer: Sealer;
  everyRecords: number;
  everySeconds: number;
}

function sealingSettings(sealing: AuditSealingOptions): Required<Omit<AuditSealingOptions, 'onSealingKey'>> & Pick<AuditSealingOptions, 'onSealingKey'> {
  const everyRecords = sealing.everyRecords ?? DEFAULT_SEAL_EVERY_RECORDS;
  const everySeconds = sealing.everySeconds ?? DEFAULT_SEAL_EVERY_SECONDS;
  if (!Number.isSafeInteger(everyRecords) || everyRecords < 1) {
    throw new GatehouseError('INVALID_OPTIONS', `sealing.everyRecords must be a positive integer, not ${String(everyRecords)}`);
  }
  if (!(everySeconds > 0 && everySeconds <= 86_400)) {
    throw new GatehouseError('INVALID_OPTIONS', `sealing.everySeconds must be more than 0 and at most 86400, not ${String(everySeconds)}`);
  }
  if (typeof sealing.keyFile !== 'string' || sealing.keyFile === '') throw new GatehouseError('INVALID_OPTIONS', 'sealing.keyFile must name a file');
  return { keyFile: sealing.keyFile, everyRecords, everySeconds, onSealingKey: sealing.onSealingKey };
}

/** Why a file of the trail is not ours alone (owned by another user than us or root, or writable by others), if it is not. */
function sharedFileProblem(stats: Stats): string | undefined {
  const uid = process.geteuid?.();
  if (uid !== undefined && stats.uid !== uid && stats.uid !== 0) return `owned by uid ${stats.uid}, not by this process (uid ${uid}) or root`;
  if ((stats.mode & 0o022) !== 0) return `writable by group or others (mode ${(stats.mode & 0o777).toString(8)})`;
  return undefined;
}

/**
 * Appends the key line of the segment that opens after seq `lastSeq` to the sealing-key file (created 0644: it
 * holds public keys only) and fsyncs it. Returns that line, and `orphans`: keys that starts which died between
 * writing their key and their first record left at the next seqs. The new segment opens after them (the log
 * records them first), so no segment number is ever keyed twice: verification takes that for a rewrite.
 */
async function appendSegmentKey(
  keyFile: string,
  logId: string,
  lastSeq: number,
  everyRecords: number,
  publicKey: string,
  logger: Logger,
): Promise<{ keyLine: string; orphans: SealingKey[] }> {
  let handle: FileHandle | undefined;
  try {
    // O_NOFOLLOW: a symlink planted at the key file's path must not send our key line elsewhere.
    // O_NONBLOCK: a FIFO planted there cannot stall the open (and so the host's start) before it is refused below.
    handle = await open(keyFile, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
    const stats = await handle.stat();
    // A FIFO or device in its place would swallow the key line that verification needs.
    if (!stats.isFile()) throw new Error('not a regular file');
    // Whoever owns or can write the local copy could slip in a key of their own before it is copied away.
    const problem = sharedFileProblem(stats);
    if (problem !== undefined) throw new Error(problem);
    // Bounds what a huge file planted at the path makes the host read; a verifier would refuse it anyway.
    if (stats.size > MAX_SEALING_KEY_FILE_BYTES) throw new Error(`larger than ${MAX_SEALING_KEY_FILE_BYTES} bytes, more than a verifier reads`);
    const text = (await handle.readFile()).toString('utf8');
    // A key line torn by a crash or a full disk holds no key a record used: reported, and left out.
    const keys = parseKeyLines(text, (line) => logger.warn({ keyFile, line }, 'audit sealing-key file: a key line was cut short (a crash or a full disk); it holds no key'));
    if (typeof keys === 'string') {
      throw new GatehouseError('AUDIT_INVALID', `audit sealing-key file ${keyFile} is damaged (${keys}), so no log can be verified with it; repair it (its keys seal the earlier segments)`);
    }
    // A log sealed since its first record whose key file knows nothing of it lost that file (deleted, or replaced by
    // another log's): the earlier segments are checkable only with the copy kept off the host, which must then be
    // complete. Said now, not when an auditor finds a key file that verifies nothing.
    if (lastSeq > 0 && !keys.some((key) => key.logId === logId)) {
      logger.warn(
        { keyFile, logId },
        `audit sealing-key file holds no key of log ${logId}, which was sealed from its first record: the file was deleted or replaced; ` +
          'restore its lines from the copy kept off this host (gatehouse audit verify needs the key of every segment)',
      );
    }
    const orphans = keys.filter((key) => key.logId === logId && key.segment > lastSeq);
    // Keys past the end that no crashed start explains mean a cut log: a key for our segment would key it twice.
    const stray = orphans.find((key, index) => key.segment !== lastSeq + 1 + index);
    if (stray !== undefined) {
      throw new GatehouseError(
        'AUDIT_INVALID',
        `audit sealing-key file ${keyFile} has a key for segment ${stray.segment} of this log, which ends at seq ${lastSeq}: the log lost records after that key was written (cut, or restored from an older copy), and its next segment would be keyed twice; keep both files, move the log aside and start a new one`,
      );
    }
    const keyLine = formatSealingKey({ logId, segment: lastSeq + orphans.length + 1, everyRecords, publicKey });
    // Ends a torn last line first: our key line welded onto it would be lost to every verifier.
    await handle.writeFile(`${text === '' || text.endsWith('\n') ? '' : '\n'}${keyLine}\n`);
    await handle.sync();
    await syncDirectory(keyFile);
    return { keyLine, orphans };
  } catch (error) {
    if (error instanceof GatehouseError) throw error;
    throw new GatehouseError('AUDIT_WRITE_FAILED', `audit sealing-key file ${keyFile} cannot be written: ${(error as Error).message}`, { cause: error });
  } finally {
    await handle?.close();
  }
}

/** The log id from the first line of an existing log (the segment keys are bound to it), and whether it is sealed. */
async function readGenesis(handle: FileHandle, path: string): Promise<{ logId: string; sealed: boolean }> {
  const window = Buffer.alloc(MAX_LINE_BYTES + 1);
  const { bytesRead } = await handle.read(window, 0, window.length, 0);
  const end = window.subarray(0, bytesRead).indexOf(NEWLINE);
  const first = end === -1 ? 'no complete first line' : parseRecordLine(window.subarray(0, end));
  const reason = typeof first === 'string' ? first : checkLink(first, undefined);
  if (reason !== undefined || typeof first === 'string') {
    throw new GatehouseError('AUDIT_INVALID', `audit log ${path} cannot be appended to: its first record is broken: ${reason ?? ''}`);
  }
  return { logId: first.logId as string, sealed: first.fields.sealingKey !== undefined };
}

/**
 * Every directory above the log (and the sealing-key file) is the host's user's or root's, and writable by nobody else
 * unless sticky. Attack: another user who can write the log's directory renames the log (or the key file) away; the
 * host then starts a fresh chain that verifies on its own, and only an anchor kept elsewhere would show the swap.
 */
async function checkTrailDirectories(logPath: string, keyFile: string | undefined): Promise<void> {
  const uid = effectiveUid();
  for (const path of keyFile === undefined ? [logPath] : [logPath, keyFile]) {
    try {
      // The directories the path passes through, then the one the trail is in (resolveChecked leaves the last to us).
      const dir = await resolveChecked(dirname(path), uid, () => true);
      checkDirectory(dir, await lstat(dir), uid, true);
    } catch (error) {
      if (!isGatehouseError(error) || error.code !== 'DIRECTORY_WRITABLE_BY_OTHERS') throw error;
      throw new GatehouseError(
        'DIRECTORY_WRITABLE_BY_OTHERS',
        `audit trail ${path}: ${error.message}: whoever can write there could rename the log away, and a fresh one would pass for it; ` +
          `keep the trail in a directory only this user (uid ${uid}) or root can write, with none above it writable by anyone else (a sticky one such as /tmp will do)`,
        { cause: error },
      );
    }
  }
}

/** The exit flushes of the logs open in this process, run by one listener however many logs a host opens. */
const exitFlushes = new Set<() => void>();

/**
 * Runs `flush` when the process exits, until the returned function is called. Node's own 'exit' event, not signal-exit:
 * its handlers would take over SIGXFSZ and the like, and a log past a file-size limit must fail closed
 * (AUDIT_WRITE_FAILED, A8), not kill its host.
 */
function flushAtExit(flush: () => void): () => void {
  if (exitFlushes.size === 0) process.on('exit', runExitFlushes);
  exitFlushes.add(flush);
  return () => {
    exitFlushes.delete(flush);
    if (exitFlushes.size === 0) process.off('exit', runExitFlushes);
  };
}

function runExitFlushes(): void {
  for (const flush of exitFlushes) flush();
}

/** This writer's mark (none without /proc), and the pids of earlier writers that ended without closing the log. */
interface WriterClaim {
  mark: WriterMark | undefined;
  notClosedBy: number[];
}

/** A mark's token: 16 random bytes in hex. */
const MARK_TOKEN_CHARS = 32;

/**
 * This writer's mark: its path, and the random token written in it (another writer's mark may later take the same
 * name, and the file system reuse its inode number).
 */
interface WriterMark {
  path: string;
  token: string;
}

/** A writer's mark after `<log>.writer-`: pid, start time and, since marks name it, the pid's scope. */
const WRITER_MARK = new RegExp(`^([0-9]+)-([0-9]+)(?:-(${PID_SCOPE_PATTERN}))?$`);

/**
 * Marks the log at `path` as held by this process (an empty `<log>.writer-<pid>-<start time>-<pid scope>` beside it)
 * and refuses it (AUDIT_IN_USE) while a live process, this one included, holds it: two writers would fork its chain.
 * Each writer makes its own mark before it looks for others', so of two that start together at most one goes on. A
 * mark whose process is gone (its pid unused, or used by a process started later) is removed. One made in another
 * scope (another container, another machine) cannot be judged by its pid: it holds the log while its writer keeps
 * refreshing it (holdLease), and is taken for a dead writer's once it has aged past LEASE_EXPIRY_MS. Marks of older
 * versions name no scope: judged as ours. Gives the mark (none without /proc: not Linux, where one writer per file is
 * left to the caller) and the pids of the removed marks: writers that ended without closing the log.
 */
async function claimWriter(path: string): Promise<WriterClaim> {
  const { startTime: started, scope } = await selfIdentity();
  if (started === undefined) return { mark: undefined, notClosedBy: [] };
  const token = randomBytes(16).toString('hex');
  const directory = dirname(path);
  const prefix = `${basename(path)}.writer-`;
  const mark = `${path}.writer-${process.pid}-${started}${scope === undefined ? '' : `-${scope}`}`;
  const inUse = (pid: number, who: string): GatehouseError =>
    new GatehouseError('AUDIT_IN_USE', `audit log ${path} is in use by process ${pid}${who}: one writer per file, or its chain forks; close that log first, or open another file`);
  try {
    // O_EXCL: the mark exists already only when this process holds the log through another open.
    const made = await open(mark, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
    try {
      await made.writeFile(token);
    } finally {
      await made.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw inUse(process.pid, ' (this one)');
    throw new GatehouseError('AUDIT_WRITE_FAILED', `audit log ${path} cannot be marked as in use: ${(error as Error).message} (its directory must be writable)`, { cause: error });
  }
  const notClosedBy: number[] = [];
  try {
    for (const name of await readdir(directory)) {
      const holder = name.startsWith(prefix) ? WRITER_MARK.exec(name.slice(prefix.length)) : null;
      const other = join(directory, name);
      if (holder === null || other === mark) continue;
      // Another user's file under a mark's name (a shared or sticky directory such as /tmp): only a writer of this log
      // (the owner or root, as sharedFileProblem lets append) makes marks, so theirs would lock us out of it for good.
      if (!isWritersMark(await lstat(other).catch(() => undefined))) continue;
      const pid = Number(holder[1]);
      // A live second writer, here or (judged by its lease) in another container or on another machine sharing the
      // directory, where its pid names nobody: appending beside it would fork the chain.
      const { holds, leaseAgeMs } = await holderHolds({ pid, startTime: holder[2], scope: holder[3] }, other);
      if (holds) {
        const elsewhere =
          leaseAgeMs === undefined
            ? ''
            : ` in another PID namespace or on another machine, whose mark was refreshed ${Math.max(0, Math.round(leaseAgeMs / 1000))} s ago (a live writer refreshes it ` +
              `every ${LEASE_REFRESH_MS / 1000} s; it is taken for gone after ${LEASE_EXPIRY_MS / 1000} s)`;
        throw inUse(pid, elsewhere);
      }
      // Its writer died without closing the log: that pid is gone, or names a process started since (or its lease lapsed).
      notClosedBy.push(pid);
      await rm(other, { force: true });
    }
    return { mark: { path: mark, token }, notClosedBy };
  } catch (error) {
    await rm(mark, { force: true });
    if (error instanceof GatehouseError) throw error;
    throw new GatehouseError('AUDIT_WRITE_FAILED', `audit log ${path}: its writers cannot be checked: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Whether a directory entry can be a writer's mark: a regular file of a user whose writes the log accepts
 * (sharedFileProblem), with no access for group or others, as claimWriter makes it (0600).
 */
function isWritersMark(stats: Stats | undefined): boolean {
  return (
    stats !== undefined &&
    stats.isFile() &&
    (stats.uid === effectiveUid() || stats.uid === 0) &&
    // Attack: another user hard-links, under a mark's name, a file of root or the owner that they may read and write
    // (all fs.protected_hardlinks lets them link): its owner passed, and the host was refused its log for good.
    (stats.mode & 0o077) === 0
  );
}

async function openFile(path: string): Promise<{ handle: FileHandle; created: boolean }> {
  // O_NOFOLLOW: a symlink planted at the log's path must not redirect our appends into another file.
  // O_APPEND: every write lands at the end, even if something else moved the file offset.
  // O_NONBLOCK: a FIFO planted at the path cannot stall the open before openAuditLog refuses it.
  const flags = constants.O_RDWR | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  try {
    try {
      return { handle: await open(path, flags | constants.O_CREAT | constants.O_EXCL, 0o600), created: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      return { handle: await open(path, flags), created: false };
    }
  } catch (error) {
    throw new GatehouseError('AUDIT_WRITE_FAILED', `audit log ${path} cannot be opened: ${(error as Error).message}`, { cause: error });
  }
}

/** fsyncs the directory, so that a crash right after creation cannot lose the file's name. */
async function syncDirectory(path: string): Promise<void> {
  // O_DIRECTORY and O_NONBLOCK: a FIFO swapped in for the directory is refused, not waited on.
  const directory = await open(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NONBLOCK);
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/** The last line of an existing log, checked on its own and against the line before it. */
async function readTail(handle: FileHandle, path: string, size: number): Promise<{ seq: number; lineHash: string }> {
  const invalid = (reason: string): GatehouseError =>
    new GatehouseError(
      'AUDIT_INVALID',
      `audit log ${path} cannot be appended to: its last record is broken: ${reason}; keep it as evidence ` +
        `(gatehouse audit verify ${path} names the line), move it aside and start a new log`,
    );
  // Two maximal lines and their newlines, and the newline before them: without that byte, a line before the
  // last of exactly MAX_LINE_BYTES could not be told from a longer one, and the log could not be reopened.
  const windowSize = Math.min(size, 2 * (MAX_LINE_BYTES + 1) + 1);
  const start = size - windowSize;
  const window = Buffer.alloc(windowSize);
  const { bytesRead } = await handle.read(window, 0, windowSize, start);
  if (bytesRead !== windowSize) throw invalid('the file changed while it was read');
  // Appending after a partial line would weld our record onto it and break the chain at that point.
  if (window[windowSize - 1] !== NEWLINE) throw invalid('the last line has no newline (truncated write)');
  const lastStart = window.lastIndexOf(NEWLINE, windowSize - 2) + 1;
  if (lastStart === 0 && start > 0) throw invalid(`the last line is longer than ${MAX_LINE_BYTES} bytes`);
  const lastLine = window.subarray(lastStart, windowSize - 1);
  const last = parseRecordLine(lastLine);
  if (typeof last === 'string') throw invalid(last);
  let reason: string | undefined;
  if (lastStart === 0) {
    reason = checkLink(last, undefined);
  } else {
    const previousStart = window.lastIndexOf(NEWLINE, lastStart - 2) + 1;
    if (previousStart === 0 && start > 0) throw invalid(`the line before it is longer than ${MAX_LINE_BYTES} bytes`);
    const previousLine = window.subarray(previousStart, lastStart - 1);
    const previous = parseRecordLine(previousLine);
    if (typeof previous === 'string') throw invalid(`the line before it: ${previous}`);
    reason = checkLink(last, { seq: previous.seq, lineHash: sha256Hex(previousLine) });
  }
  if (reason !== undefined) throw invalid(reason);
  return { seq: last.seq, lineHash: sha256Hex(lastLine) };
}

class FileAuditLog implements AuditLog {
  readonly #path: string;
  readonly #handle: FileHandle;
  readonly #mark: WriterMark | undefined;
  /** Removes the exit hook that writes what is still queued when the process exits before close(). */
  readonly #forgetAtExit: () => void;
  /** Stops refreshing the mark: a writer in another container or machine tells a live holder by it. */
  readonly #stopLease: () => void;
  readonly #onError: ((error: GatehouseError) => void) | undefined;
  readonly #logger: Logger;
  readonly #maxQueuedBytes: number;
  #queue: Queued[] = [];
  #queuedBytes = 0;
  /** The seq and line hash of the last record accepted into the queue: the chain continues from them. */
  #lastSeq: number;
  #lastLineHash: string;
  #syncedSeq: number;
  #dropped = 0;
  /** Records dropped since the last flush() was called: that flush() tells its caller. */
  #droppedSinceFlush = 0;
  #draining: Promise<void> | undefined;
  #failure: GatehouseError | undefined;
  #closing: Promise<void> | undefined;
  readonly #logId: string;
  readonly #seal: SegmentSeal | undefined;
  /** seq of this segment's opening record (what its checkpoints name). */
  readonly #segment: number;
  #sinceCheckpoint = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Set only inside recordAtExit: the lines made meanwhile, to be written synchronously. */
  #atExit: Buffer[] | undefined;
  /** The file's size once every write handed to the disk has landed (one writer per file: only ours grow it). */
  #fileEnd: number;
  /** Where the file ends once the write() in flight lands; undefined when none is (its fsync may still be). */
  #writingTo: number | undefined;
  /** Set once recordAtExit waited in vain for a write in flight: the exit hook's later calls do not wait again. */
  #writeStuckAtExit = false;

  constructor(
    path: string,
    handle: FileHandle,
    /** This writer's mark beside the log (claimWriter), removed on close. */
    mark: WriterMark | undefined,
    logId: string,
    tail: { seq: number; lineHash: string } | undefined,
    /** The file's size when opened: where this writer's first line lands. */
    size: number,
    /** Keys that starts which died before their first record left at the seqs after `tail` (appendSegmentKey). */
    orphans: readonly SealingKey[],
    options: AuditLogOptions,
    seal: SegmentSeal | undefined,
    /** Earlier writers of this log that ended without closing it (their marks were left behind). */
    notClosedBy: readonly number[] = [],
  ) {
    this.#path = path;
    this.#handle = handle;
    this.#mark = mark;
    this.#stopLease = mark === undefined ? () => {} : holdLease(mark.path);
    // A host that exits without close() leaves nothing it recorded behind (#flushAtExit).
    this.#forgetAtExit = flushAtExit(() => this.#flushAtExit());
    this.#onError = options.onError;
    this.#logger = options.logger ?? silentLogger;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.#logId = logId;
    this.#fileEnd = size;
    this.#seal = seal;
    this.#segment = (tail?.seq ?? 0) + orphans.length + 1;
    const sealingKey = seal === undefined ? {} : { sealingKey: seal.sealer.firstKey, sealEvery: seal.everyRecords };
    if (tail === undefined) {
      this.#lastSeq = 0;
      this.#lastLineHash = genesisPrev(this.#logId);
      this.#syncedSeq = 0;
      this.#append(GENESIS_TYPE, { logId: this.#logId, version: FORMAT_VERSION, ...sealingKey, host: auditHostIdentity() });
    } else {
      this.#lastSeq = tail.seq;
      this.#lastLineHash = tail.lineHash;
      this.#syncedSeq = tail.seq;
      // Each orphaned key opens the segment its line names, so that the key file and the log agree on every segment
      // number. Queued as is: they belong to no segment of ours, so they count for none of our checkpoints.
      for (const orphan of orphans) {
        this.#enqueue(this.#build(this.#lastSeq + 1, this.#lastLineHash, REOPENED_TYPE, { sealingKey: orphan.publicKey, sealEvery: orphan.everyRecords, unusedKey: true }));
      }
      // Marks the restart, so a reader sees where a crash may have lost records, and which process wrote from here on.
      // A writer that never closed the log died (SIGKILL, a crash, power loss) or exited without close(): its last
      // records may be lost and its plugins were killed with it, which nothing else in the log says.
      const unclosed = notClosedBy.length === 0 ? {} : { notClosedBy };
      this.#append(REOPENED_TYPE, { ...sealingKey, host: auditHostIdentity(), ...unclosed });
    }
    if (seal !== undefined) {
      // Bounds how long a record stays unsealed when few arrive; unref: the log must not keep the host alive.
      this.#timer = setInterval(() => this.#checkpoint(), seal.everySeconds * 1000).unref();
    }
  }

  get failure(): GatehouseError | undefined {
    return this.#failure;
  }

  record(event: AuditEvent): void {
    if (this.#failure !== undefined) return;
    if (this.#closing !== undefined) {
      this.#report(new GatehouseError('AUDIT_WRITE_FAILED', `audit log ${this.#path}: ${boundedType(event.type)} event recorded after close(); not written`));
      return;
    }
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(event)) if (!RESERVED_FIELDS.has(key)) fields[key] = value;
    const type: unknown = event.type;
    // Untyped code could pass one of the log's own types (a forged opening record or checkpoint, which breaks
    // the log for the verifier), none, or a huge one: the event is still recorded, under a type of its own.
    if (typeof type === 'string' && type !== '' && type.length <= MAX_TYPE_LENGTH && !LOG_TYPES.has(type)) {
      this.#append(type, fields);
    } else {
      this.#append(INVALID_TYPE, { ...fields, originalType: boundedType(type) });
    }
  }

  /** For openAuditLog when opening failed: stops the timer and any further write or report. */
  abandon(): void {
    clearInterval(this.#timer);
    this.#failure ??= new GatehouseError('AUDIT_WRITE_FAILED', `audit log ${this.#path}: not opened`);
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  recordAtExit(event: AuditEvent): boolean {
    return this.#writeAtExit(event);
  }

  /**
   * At the process's exit (the exit hook of an open log): what is queued, sealed, written synchronously. Attack (or a
   * plain bug): a host that exits without close(), as after a refusal with process.exit(1), lost the records still
   * queued, the refusal among them, and an auditor never learnt of it.
   */
  #flushAtExit(): void {
    const unsealed = this.#seal !== undefined && this.#sinceCheckpoint > 0;
    if (this.#queue.length > 0 || this.#writingTo !== undefined || unsealed) this.#writeAtExit(undefined);
  }

  /** `event` (if any) after every record still queued, and a checkpoint when sealed, written and fsynced at once. */
  #writeAtExit(event: AuditEvent | undefined): boolean {
    if (this.#failure !== undefined || this.#closing !== undefined) return false;
    // A write in flight holds earlier lines: writing past it before it lands would put the chain out of order on disk.
    // It runs on a thread of its own, so it lands while we wait: an exiting host that records right after a launch
    // (a write is then nearly always in flight) lost its kill records when this gave up at once.
    const landedEnd = this.#writingTo === undefined ? this.#fileEnd : this.#waitForLanding(this.#writingTo);
    if (landedEnd === undefined) return false;
    // As in #drain: a log another writer took over gets no more lines from this one.
    if (!this.#holdsMarkSync()) {
      this.#fail(new Error(this.#markLost()));
      return false;
    }
    // Lines queued behind that write would die with the process: they go first, in chain order.
    const lines: Buffer[] = this.#queue.map((entry) => entry.bytes);
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#atExit = lines;
    try {
      if (event !== undefined) this.record(event);
      // Seals what the process leaves behind: nothing can be signed for this segment after it exits.
      this.#checkpoint();
    } finally {
      this.#atExit = undefined;
    }
    try {
      const bytes = Buffer.concat(lines);
      for (let offset = 0; offset < bytes.length; ) offset += writeSync(this.#handle.fd, bytes, offset, bytes.length - offset);
      fsyncSync(this.#handle.fd);
      this.#writingTo = undefined;
      this.#fileEnd = landedEnd + bytes.length;
      this.#syncedSeq = this.#lastSeq;
      return true;
    } catch (error) {
      this.#fail(error);
      return false;
    }
  }

  /**
   * Blocks (an exit hook cannot wait otherwise) until the file reaches `end`, the size it has once the write in
   * flight landed, for at most AT_EXIT_WAIT_MS; gives `end`, or undefined if it did not land in time.
   */
  #waitForLanding(end: number): number | undefined {
    if (this.#writeStuckAtExit) return undefined;
    const deadline = Date.now() + AT_EXIT_WAIT_MS;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
      let size: number;
      try {
        size = fstatSync(this.#handle.fd).size;
      } catch {
        return undefined;
      }
      if (size >= end) return end;
      if (Date.now() >= deadline) {
        this.#writeStuckAtExit = true;
        return undefined;
      }
      Atomics.wait(pause, 0, 0, 1);
    }
  }

  #append(type: string, fields: Record<string, unknown>): void {
    const seq = this.#lastSeq + 1;
    // Records lost to a full backlog are counted in the chain, just before the next record that fits.
    const notice = this.#dropped > 0 ? this.#build(seq, this.#lastLineHash, DROPPED_TYPE, { count: this.#dropped }) : undefined;
    const line = notice === undefined ? this.#build(seq, this.#lastLineHash, type, fields) : this.#build(seq + 1, sha256Hex(notice), type, fields);
    const needed = line.length + 1 + (notice === undefined ? 0 : notice.length + 1);
    // Bounded memory: a stalled disk must not let events grow the queue until the host runs out of memory.
    if (this.#queuedBytes + needed > this.#maxQueuedBytes) {
      this.#dropped += 1;
      this.#droppedSinceFlush += 1;
      if (this.#dropped === 1) this.#logger.warn({ path: this.#path }, 'audit log backlog full: dropping records');
      return;
    }
    if (notice !== undefined) {
      this.#dropped = 0;
      this.#enqueue(notice);
    }
    this.#enqueue(line);
    this.#sinceCheckpoint += notice === undefined ? 1 : 2;
    if (this.#seal !== undefined && this.#sinceCheckpoint >= this.#seal.everyRecords) this.#checkpoint();
  }

  /** Appends the count of records dropped and not yet noted, whatever the backlog: the chain must say they were lost. */
  #noteDropped(): void {
    if (this.#dropped === 0 || this.#failure !== undefined) return;
    this.#enqueue(this.#build(this.#lastSeq + 1, this.#lastLineHash, DROPPED_TYPE, { count: this.#dropped }));
    this.#dropped = 0;
  }

  /**
   * Appends a checkpoint sealing every line so far, when there is something to seal. Never dropped for the
   * backlog cap: a lost checkpoint would lose the next epoch's public key and break the key chain.
   */
  #checkpoint(): void {
    const seal = this.#seal;
    if (seal === undefined || this.#sinceCheckpoint === 0 || this.#failure !== undefined) return;
    this.#noteDropped();
    const head = { seq: this.#lastSeq + 1, time: new Date().toISOString() };
    const fields = seal.sealer.seal(this.#logId, { ...head, segment: this.#segment, prev: this.#lastLineHash });
    this.#enqueue(Buffer.from(sealLine(JSON.stringify({ ...head, type: CHECKPOINT_TYPE, ...fields, prev: this.#lastLineHash }))));
    this.#sinceCheckpoint = 0;
  }

  /** One line of the chain (without its newline), built at once so later changes to the event's objects cannot alter it. */
  #build(seq: number, prev: string, type: string, fields: Record<string, unknown>): Buffer {
    const head = { seq, time: new Date().toISOString() };
    let line: Buffer;
    try {
      // JSON.stringify escapes newlines and control characters, so no field can forge a line of its own.
      line = Buffer.from(sealLine(JSON.stringify({ ...head, type, ...fields, prev })));
    } catch (error) {
      // A value JSON cannot hold (a BigInt, a cycle) must still leave a trace rather than vanish.
      line = Buffer.from(sealLine(JSON.stringify({ ...head, type: UNSERIALIZABLE_TYPE, originalType: type, error: (error as Error).message, prev })));
    }
    if (line.length > MAX_LINE_BYTES) {
      line = Buffer.from(sealLine(JSON.stringify({ ...head, type: TOO_LARGE_TYPE, originalType: type, bytes: line.length, prev })));
    }
    return line;
  }

  #enqueue(line: Buffer): void {
    this.#lastSeq += 1;
    this.#lastLineHash = sha256Hex(line);
    if (this.#atExit !== undefined) {
      this.#atExit.push(Buffer.concat([line, NEWLINE_BYTES]));
      return;
    }
    this.#queue.push({ bytes: Buffer.concat([line, NEWLINE_BYTES]), seq: this.#lastSeq });
    this.#queuedBytes += line.length + 1;
    this.#draining ??= this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0 && this.#failure === undefined) {
        // Attack (or a pause): a writer whose lease lapsed (its container frozen past LEASE_EXPIRY_MS) had its mark
        // taken over by a host elsewhere, which now appends; writing on would fork the chain for good. Checked again
        // once MARK_RECHECK_MS have passed on the monotonic clock (which runs on while a container is frozen): a mark
        // we held that recently cannot have lapsed since, and a log awaited record by record pays no file read each.
        const checkedAt = performance.now();
        if (checkedAt - this.#markCheckedAt >= MARK_RECHECK_MS) {
          if (!(await this.#holdsMark())) {
            this.#fail(new Error(this.#markLost()));
            break;
          }
          this.#markCheckedAt = checkedAt;
        }
        const batch = this.#queue;
        this.#queue = [];
        this.#queuedBytes = 0;
        const bytes = Buffer.concat(batch.map((entry) => entry.bytes));
        const end = this.#fileEnd + bytes.length;
        this.#writingTo = end;
        for (let offset = 0; offset < bytes.length; ) {
          const { bytesWritten } = await this.#handle.write(bytes, offset, bytes.length - offset);
          offset += bytesWritten;
        }
        // recordAtExit may have written after this batch meanwhile: the file only ever grows.
        if (this.#writingTo === end) this.#writingTo = undefined;
        this.#fileEnd = Math.max(this.#fileEnd, end);
        await this.#handle.sync();
        this.#syncedSeq = Math.max(this.#syncedSeq, batch[batch.length - 1]?.seq ?? this.#syncedSeq);
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      // Cleared in the same tick as the empty-queue check, so a record made right after starts a new loop.
      this.#draining = undefined;
    }
  }

  /** When our mark was last found ours (performance.now()). */
  #markCheckedAt = Number.NEGATIVE_INFINITY;

  /** Whether our mark is still there, as we made it (none without /proc: nothing to check). */
  async #holdsMark(): Promise<boolean> {
    if (this.#mark === undefined) return true;
    const path = this.#mark.path;
    const found = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
      .then(async (handle) => {
        try {
          const { buffer, bytesRead } = await handle.read(Buffer.alloc(MARK_TOKEN_CHARS + 1), 0, MARK_TOKEN_CHARS + 1, 0);
          return buffer.subarray(0, bytesRead);
        } finally {
          await handle.close();
        }
      })
      .catch(() => undefined);
    return found?.toString('latin1') === this.#mark.token;
  }

  #holdsMarkSync(): boolean {
    if (this.#mark === undefined) return true;
    let fd: number | undefined;
    try {
      fd = openSync(this.#mark.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const found = Buffer.alloc(MARK_TOKEN_CHARS + 1);
      const read = readSync(fd, found, 0, found.length, 0);
      return found.subarray(0, read).toString('latin1') === this.#mark.token;
    } catch {
      return false;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  #markLost(): string {
    return (
      `its writer mark ${this.#mark?.path ?? ''} was removed or replaced: another host took the log over (this one did not refresh the mark ` +
      `for ${LEASE_EXPIRY_MS / 1000} s: paused or frozen?), so this one stops recording rather than fork the chain; open a new log`
    );
  }

  #fail(cause: unknown): void {
    if (this.#failure !== undefined) return;
    const failure = new GatehouseError('AUDIT_WRITE_FAILED', `audit log ${this.#path}: ${(cause as Error).message}`, { cause });
    this.#failure = failure;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#logger.error({ path: this.#path, err: cause }, 'audit log write failed; recording stopped');
    this.#report(failure);
  }

  #report(error: GatehouseError): void {
    const onError = this.#onError;
    // Called outside the write loop and record(): a throwing handler is the caller's bug and must
    // neither wedge the loop nor throw into the code that recorded the event.
    if (onError !== undefined) queueMicrotask(() => onError(error));
  }

  async flush(): Promise<void> {
    const target = this.#lastSeq;
    // Unaudited action: a host awaiting flush() before it acts must not go on when its record was dropped for the
    // backlog cap, which no fsync will ever write. Told to the first flush() after the drop (a caller that records
    // and then flushes, as hosts do, hears of its own record's).
    const dropped = this.#droppedSinceFlush;
    this.#droppedSinceFlush = 0;
    while (this.#syncedSeq < target && this.#failure === undefined && this.#draining !== undefined) await this.#draining;
    if (this.#failure !== undefined) throw this.#failure;
    if (dropped > 0) {
      throw new GatehouseError(
        'AUDIT_RECORDS_DROPPED',
        `audit log ${this.#path}: ${dropped === 1 ? '1 record made since the last flush() was' : `${dropped} records made since the last flush() were`} dropped: ` +
          `more than maxQueuedBytes (${this.#maxQueuedBytes} bytes) waited for the disk, which is too slow or stalled for the events recorded; ` +
          'the chain counts them (records-dropped) but holds none of them: do not act as if they were recorded',
        { details: { droppedRecords: dropped } },
      );
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#forgetAtExit();
      clearInterval(this.#timer);
      // Records dropped since the last record that fitted would otherwise go unnoted in the chain.
      this.#noteDropped();
      // A clean close seals every record; the last key is then dropped, so nothing more can be signed.
      this.#checkpoint();
      this.#seal?.sealer.destroy();
      try {
        await this.flush();
      } finally {
        await this.#handle.close();
        this.#stopLease();
        // Only our own: a mark of the same name made since is another writer's, which holds the log now.
        if (this.#mark !== undefined && (await this.#holdsMark())) await rm(this.#mark.path, { force: true });
      }
    })();
    return this.#closing;
  }
}
