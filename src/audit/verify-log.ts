/**
 * The audit log's line format, and `verifyAuditLog`, which walks a log and names its first broken record.
 *
 * Each line is one JSON object ending in `"prev":"<hex>","hash":"<hex>"}` and a newline:
 * - `hash` is the SHA-256 of the line's bytes with `,"hash":"<hex>"` cut out (the record's own body);
 * - `prev` is the SHA-256 of the previous line's exact bytes (without its newline), or for the first
 *   line, the genesis value derived from the log id that line carries;
 * - `seq` counts from 1 and equals the line number.
 * `checkAuditLog` also checks the log against an anchor (anchor.ts) and its checkpoints (seal-check.ts).
 * See docs/audit.md for what this does and does not prove.
 */
import { createHash } from 'node:crypto';
import { GatehouseError } from '../errors.js';
import { openRegularFile } from '../discover/untrusted-file.js';
import { isLineHash, isLogId, type AuditAnchor } from './anchor.js';
import { SegmentChecker, type SealingReport } from './seal-check.js';
import type { SealingKey } from './sealing.js';

/** The longest line a writer produces and a reader accepts, newline excluded; bounds a reader's memory. */
export const MAX_LINE_BYTES = 1024 * 1024;
export const GENESIS_TYPE = 'audit-log-opened';
/** The record a writer opens an existing log with: the start of a new segment. */
export const REOPENED_TYPE = 'audit-log-reopened';
export const FORMAT_VERSION = 1;

const NEWLINE = 0x0a;
/** `,"hash":"` + 64 hex digits + `"}`: the fixed-length tail every line ends with. */
const HASH_FIELD_PREFIX = ',"hash":"';
const HASH_TAIL_BYTES = HASH_FIELD_PREFIX.length + 64 + 2;

/** Why a log failed: its chain is broken, it does not match the anchor, or its seal does not hold. */
export type AuditFailureCode = 'AUDIT_INVALID' | 'AUDIT_ANCHOR_MISMATCH' | 'AUDIT_SEAL_INVALID';

export interface AuditFailure {
  ok: false;
  line: number;
  reason: string;
  code: AuditFailureCode;
}

export type AuditVerification = { ok: true; records: number } | AuditFailure;

/** What an intact log is: what an auditor compares with what they kept, or keeps as the next anchor. */
export interface AuditReport {
  ok: true;
  logId: string;
  records: number;
  /** SHA-256 of the last line (without its newline). */
  lastHash: string;
  sealing: SealingReport;
}

export interface AuditCheckOptions {
  /** Facts kept elsewhere that the log must still match. */
  anchor?: AuditAnchor;
  /**
   * The first public key of every segment, from a sealing-key file kept elsewhere; each segment must be sealed.
   * Keys of other logs fail the check (this log may have replaced one of them) unless `anchor.logId` names this one.
   */
  sealingKeys?: readonly SealingKey[];
  /**
   * Hears each record once it passed every check on its line, in order, in the same pass: what a caller builds from
   * them was verified, not read again from a file that may have changed since. Worth nothing unless the result is ok.
   */
  onRecord?: (record: ChainRecord) => void;
}

/** What the chain checks need from one parsed line. */
export interface ChainRecord {
  seq: number;
  type: string;
  prev: string;
  logId: unknown;
  /** Every field of the line, for the checks that need more than the chain (checkpoints, segment keys). */
  fields: Record<string, unknown>;
}

/** What a line is linked to: the record before it, or nothing for the first line. */
export interface ChainLink {
  seq: number;
  lineHash: string;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The first record's `prev`: binding it to the log id means a record cannot be moved to the head of another log. */
export function genesisPrev(logId: string): string {
  return sha256Hex(`gatehouse audit log v${FORMAT_VERSION} ${logId}`);
}

/** Appends the self-hash to a serialized record (`body` is JSON.stringify of an object). */
export function sealLine(body: string): string {
  return `${body.slice(0, -1)}${HASH_FIELD_PREFIX}${sha256Hex(body)}"}`;
}

/** Checks one line on its own: JSON, the required fields, and its self-hash. Returns the reason it is broken, or the record. */
export function parseRecordLine(line: Buffer): ChainRecord | string {
  if (line.length > MAX_LINE_BYTES) return `longer than ${MAX_LINE_BYTES} bytes`;
  let value: unknown;
  try {
    value = JSON.parse(line.toString('utf8'));
  } catch {
    return 'not valid JSON (truncated or damaged)';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const record = value as Record<string, unknown>;
  const { seq, time, type, prev, hash } = record;
  if (typeof hash !== 'string' || !isLineHash(hash)) return 'no valid "hash" field';
  const tailStart = line.length - HASH_TAIL_BYTES;
  // The self-hash covers the exact bytes, so a change the JSON parser would not notice (whitespace,
  // escapes, key order) is caught too; it is what protects the newest record, which no `prev` covers yet.
  if (tailStart < 1 || line.toString('latin1', tailStart, tailStart + HASH_FIELD_PREFIX.length) !== HASH_FIELD_PREFIX) {
    return '"hash" is not the last field';
  }
  const body = Buffer.concat([line.subarray(0, tailStart), Buffer.from('}')]);
  if (sha256Hex(body) !== hash) return 'record does not match its hash (edited)';
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return 'no valid "seq" field';
  if (typeof time !== 'string' || Number.isNaN(Date.parse(time))) return 'no valid "time" field';
  if (typeof type !== 'string' || type === '') return 'no valid "type" field';
  if (typeof prev !== 'string' || !isLineHash(prev)) return 'no valid "prev" field';
  return { seq, type, prev, logId: record.logId, fields: record };
}

/** Checks that `record` follows `previous` (or opens the log). Returns the reason it does not, if any. */
export function checkLink(record: ChainRecord, previous: ChainLink | undefined): string | undefined {
  if (previous === undefined) {
    if (record.type !== GENESIS_TYPE || typeof record.logId !== 'string' || !isLogId(record.logId)) {
      return `missing genesis record: the first record must be a "${GENESIS_TYPE}" record with a log id`;
    }
    if (record.seq !== 1) return `seq ${record.seq} where 1 was expected (records before it are missing)`;
    if (record.prev !== genesisPrev(record.logId)) return 'prev does not match the genesis value of its log id';
    return undefined;
  }
  // A second genesis record means two logs were spliced together, or the head was replaced.
  if (record.type === GENESIS_TYPE) return `a second "${GENESIS_TYPE}" record`;
  // seq catches a deleted or reordered record even when the attacker also fixed the hashes around it.
  if (record.seq !== previous.seq + 1) {
    return `seq ${record.seq} where ${previous.seq + 1} was expected (a record was deleted or reordered)`;
  }
  if (record.prev !== previous.lineHash) return 'prev does not match the hash of the previous line (a record was edited)';
  return undefined;
}

/**
 * Reads the log at `path` as a stream, never holding more than one line (at most MAX_LINE_BYTES), one
 * read chunk and the segment being checked (SegmentChecker keeps totals, not a list of every segment), and
 * reports the first line that is broken. Throws as `checkAuditLog` does.
 * Kept for callers that need only intact-or-not; `checkAuditLog` also gives the log id, last hash and seal.
 */
export async function verifyAuditLog(path: string, options: AuditCheckOptions = {}): Promise<AuditVerification> {
  const result = await checkAuditLog(path, options);
  return result.ok ? { ok: true, records: result.records } : result;
}

/**
 * Walks the log at `path` as `verifyAuditLog` does, and checks it against `options.anchor` (log id, record
 * count, the hash at that count) and against the segments' sealing keys. Throws FILE_NOT_FOUND, FILE_NOT_REGULAR
 * (a link, FIFO or device) or FILE_UNREADABLE.
 */
export async function checkAuditLog(path: string, options: AuditCheckOptions = {}): Promise<AuditReport | AuditFailure> {
  let handle;
  try {
    // A FIFO at the path would hang a plain open; a link or a device is no log either.
    ({ handle } = await openRegularFile(path));
  } catch (error) {
    const cause = error as GatehouseError;
    throw new GatehouseError(cause.code, `audit log ${path} cannot be opened: ${cause.message}`, { cause });
  }
  const anchor = options.anchor ?? {};
  const broken = (line: number, reason: string, code: AuditFailureCode = 'AUDIT_INVALID'): AuditFailure => ({ ok: false, line, reason, code });
  let lineNumber = 0;
  let previous: ChainLink | undefined;
  let logId = '';
  const seals = new SegmentChecker(options.sealingKeys, anchor.logId !== undefined);
  const check = (line: Buffer): AuditFailure | undefined => {
    lineNumber += 1;
    const record = parseRecordLine(line);
    if (typeof record === 'string') return broken(lineNumber, record);
    const reason = checkLink(record, previous);
    if (reason !== undefined) return broken(lineNumber, reason);
    const lineHash = sha256Hex(line);
    if (previous === undefined) {
      logId = record.logId as string;
      // A file replaced by a fresh log has a valid chain of its own: only its id gives it away.
      if (anchor.logId !== undefined && anchor.logId !== logId) {
        return broken(1, `log id ${logId} where the anchor expects ${anchor.logId} (the file was replaced by another log)`, 'AUDIT_ANCHOR_MISMATCH');
      }
    }
    // A chain rewritten from some record on is consistent in itself; only the hash kept elsewhere differs.
    if (anchor.lastHash !== undefined && anchor.records === lineNumber && anchor.lastHash !== lineHash) {
      return broken(lineNumber, `line ${lineNumber} has hash ${lineHash} where the anchor expects ${anchor.lastHash} (the log was rewritten from this line or before)`, 'AUDIT_ANCHOR_MISMATCH');
    }
    const opens = record.type === GENESIS_TYPE || record.type === REOPENED_TYPE;
    const sealProblem = seals.check(logId, record, opens);
    if (sealProblem !== undefined) return broken(lineNumber, sealProblem.reason, sealProblem.code);
    previous = { seq: record.seq, lineHash };
    options.onRecord?.(record);
    return undefined;
  };
  try {
    let carry: Buffer = Buffer.alloc(0);
    for await (const chunk of handle.createReadStream({ highWaterMark: 64 * 1024, autoClose: false }) as AsyncIterable<Buffer>) {
      const data = carry.length === 0 ? chunk : Buffer.concat([carry, chunk]);
      let start = 0;
      for (let end = data.indexOf(NEWLINE); end !== -1; end = data.indexOf(NEWLINE, start)) {
        const failure = check(data.subarray(start, end));
        if (failure !== undefined) return failure;
        start = end + 1;
      }
      carry = data.subarray(start);
      // Stops reading a line that can no longer be valid, so a huge line cannot exhaust memory.
      if (carry.length > MAX_LINE_BYTES) return broken(lineNumber + 1, `longer than ${MAX_LINE_BYTES} bytes`);
    }
    if (carry.length > 0) return broken(lineNumber + 1, 'last line has no newline (truncated write)');
  } catch (error) {
    throw new GatehouseError('FILE_UNREADABLE', `audit log ${path} cannot be read: ${(error as Error).message}`, { cause: error });
  } finally {
    await handle.close();
  }
  if (lineNumber === 0 || previous === undefined) return broken(1, 'empty log: missing genesis record');
  // A tail cut at a line boundary leaves a valid, shorter chain: only a count or hash kept elsewhere shows it.
  if (anchor.records !== undefined && lineNumber < anchor.records) {
    return broken(lineNumber + 1, `${lineNumber} records where the anchor expects at least ${anchor.records} (records were cut off the end)`, 'AUDIT_ANCHOR_MISMATCH');
  }
  if (anchor.lastHash !== undefined && anchor.records === undefined && anchor.lastHash !== previous.lineHash) {
    return broken(lineNumber, `the last line has hash ${previous.lineHash} where the anchor expects ${anchor.lastHash} (the log was rewritten or cut)`, 'AUDIT_ANCHOR_MISMATCH');
  }
  const sealing = seals.finish(previous.seq);
  if ('reason' in sealing) return broken(lineNumber + 1, sealing.reason, sealing.code);
  return { ok: true, logId, records: lineNumber, lastHash: previous.lineHash, sealing };
}
