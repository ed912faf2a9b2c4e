/**
 * Anchors: what an auditor keeps elsewhere about a log (its id, how many records it had, the hash of the
 * last of them) so that a log replaced by a fresh one, cut at a line boundary, or rewritten from some record
 * on no longer verifies. A hash chain alone cannot show any of these: it holds no secret.
 *
 * An anchor file is one line: `gatehouse-audit-anchor v1 LOGID RECORDS LASTHASH`.
 */
const ANCHOR_TAG = 'gatehouse-audit-anchor';
const ANCHOR_VERSION = 'v1';
/** An anchor file is one short line; anything longer is not one (bounds what a reader takes in). */
export const MAX_ANCHOR_BYTES = 4096;

const LOG_ID = /^[0-9a-f]{32}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** What verification checks a log against. Every field is optional; each one given must hold. */
export interface AuditAnchor {
  /** The log's id (its first record's `logId`). */
  logId?: string;
  /** The log holds at least this many records. */
  records?: number;
  /** The SHA-256 of line `records` (of the last line when `records` is not given). */
  lastHash?: string;
}

export function formatAnchor(anchor: Required<AuditAnchor>): string {
  return `${ANCHOR_TAG} ${ANCHOR_VERSION} ${anchor.logId} ${anchor.records} ${anchor.lastHash}\n`;
}

export function isLogId(value: string): boolean {
  return LOG_ID.test(value);
}

export function isLineHash(value: string): boolean {
  return HEX64.test(value);
}

/** Parses a record count (a positive safe integer, decimal, no leading zeros) as written in an anchor, a key line or on the command line. */
export function parseRecordCount(text: string): number | undefined {
  if (!/^[1-9][0-9]{0,15}$/.test(text)) return undefined;
  const count = Number(text);
  return Number.isSafeInteger(count) ? count : undefined;
}

/** Parses an anchor file's text; returns the anchor, or the reason it is not one. */
export function parseAnchor(text: string): Required<AuditAnchor> | string {
  if (text.length > MAX_ANCHOR_BYTES) return `longer than ${MAX_ANCHOR_BYTES} bytes`;
  const line = text.endsWith('\n') ? text.slice(0, -1) : text;
  const parts = line.split(' ');
  const [tag, version, logId, records, lastHash] = parts;
  if (parts.length !== 5 || tag !== ANCHOR_TAG || line.includes('\n')) return `expected one line "${ANCHOR_TAG} v1 LOGID RECORDS LASTHASH"`;
  if (version !== ANCHOR_VERSION) return `unknown version ${JSON.stringify(version)}`;
  if (logId === undefined || !isLogId(logId)) return 'the log id is not 32 hex digits';
  const count = records === undefined ? undefined : parseRecordCount(records);
  if (count === undefined) return 'the record count is not a positive integer';
  if (lastHash === undefined || !isLineHash(lastHash)) return 'the last hash is not 64 hex digits';
  return { logId, records: count, lastHash };
}
