/**
 * The audit log's line format, and `verifyAuditLog`, which walks a log and names its first broken record.
 *
 * Each line is one JSON object ending in `"prev":"<hex>","hash":"<hex>"}` and a newline:
 * - `hash` is the SHA-256 of the line's bytes with `,"hash":"<hex>"` cut out (the record's own body);
 * - `prev` is the SHA-256 of the previous line's exact bytes (without its newline), or for the first
 *   line, the genesis value derived from the log id that line carries;
 * - `seq` counts from 1 and equals the line number.
 * See docs/audit.md for what this does and does not prove.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { GatehouseError } from '../errors.js';

/** The longest line a writer produces and a reader accepts, newline excluded; bounds a reader's memory. */
export const MAX_LINE_BYTES = 1024 * 1024;
export const GENESIS_TYPE = 'audit-log-opened';
export const FORMAT_VERSION = 1;

const NEWLINE = 0x0a;
const HEX64 = /^[0-9a-f]{64}$/;
const LOG_ID = /^[0-9a-f]{32}$/;
/** `,"hash":"` + 64 hex digits + `"}`: the fixed-length tail every line ends with. */
const HASH_FIELD_PREFIX = ',"hash":"';
const HASH_TAIL_BYTES = HASH_FIELD_PREFIX.length + 64 + 2;

export type AuditVerification = { ok: true; records: number } | { ok: false; line: number; reason: string };

/** What the chain checks need from one parsed line. */
export interface ChainRecord {
  seq: number;
  type: string;
  prev: string;
  logId: unknown;
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
  if (typeof hash !== 'string' || !HEX64.test(hash)) return 'no valid "hash" field';
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
  if (typeof prev !== 'string' || !HEX64.test(prev)) return 'no valid "prev" field';
  return { seq, type, prev, logId: record.logId };
}

/** Checks that `record` follows `previous` (or opens the log). Returns the reason it does not, if any. */
export function checkLink(record: ChainRecord, previous: ChainLink | undefined): string | undefined {
  if (previous === undefined) {
    if (record.type !== GENESIS_TYPE || typeof record.logId !== 'string' || !LOG_ID.test(record.logId)) {
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
 * Reads the log at `path` as a stream, never holding more than one line (at most MAX_LINE_BYTES) and one
 * read chunk, and reports the first line that is broken. Throws FILE_NOT_FOUND or FILE_UNREADABLE.
 */
export async function verifyAuditLog(path: string): Promise<AuditVerification> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'FILE_UNREADABLE';
    throw new GatehouseError(code, `audit log ${path} cannot be opened: ${(error as Error).message}`, { cause: error });
  }
  let lineNumber = 0;
  let previous: ChainLink | undefined;
  const check = (line: Buffer): AuditVerification | undefined => {
    lineNumber += 1;
    const record = parseRecordLine(line);
    if (typeof record === 'string') return { ok: false, line: lineNumber, reason: record };
    const reason = checkLink(record, previous);
    if (reason !== undefined) return { ok: false, line: lineNumber, reason };
    previous = { seq: record.seq, lineHash: sha256Hex(line) };
    return undefined;
  };
  try {
    let carry: Buffer = Buffer.alloc(0);
    for await (const chunk of handle.createReadStream({ highWaterMark: 64 * 1024, autoClose: false }) as AsyncIterable<Buffer>) {
      const data = carry.length === 0 ? chunk : Buffer.concat([carry, chunk]);
      let start = 0;
      for (let end = data.indexOf(NEWLINE); end !== -1; end = data.indexOf(NEWLINE, start)) {
        const broken = check(data.subarray(start, end));
        if (broken !== undefined) return broken;
        start = end + 1;
      }
      carry = data.subarray(start);
      // Stops reading a line that can no longer be valid, so a huge line cannot exhaust memory.
      if (carry.length > MAX_LINE_BYTES) return { ok: false, line: lineNumber + 1, reason: `longer than ${MAX_LINE_BYTES} bytes` };
    }
    if (carry.length > 0) {
      return { ok: false, line: lineNumber + 1, reason: 'last line has no newline (truncated write)' };
    }
  } catch (error) {
    throw new GatehouseError('FILE_UNREADABLE', `audit log ${path} cannot be read: ${(error as Error).message}`, { cause: error });
  } finally {
    await handle.close();
  }
  if (lineNumber === 0) return { ok: false, line: 1, reason: 'empty log: missing genesis record' };
  return { ok: true, records: lineNumber };
}
