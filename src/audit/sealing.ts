/**
 * Forward-secure sealing of the audit log: Ed25519 key chains, checkpoint records and the sealing-key file.
 *
 * Each time a log is opened for writing (a *segment*: the first open, or a restart) the writer makes a fresh
 * Ed25519 key pair, epoch 0. Its public key goes to the sealing-key file the caller named (to be kept
 * elsewhere) and into the segment's opening record. Every N records or T seconds the writer appends a
 * checkpoint record signed by the current epoch's key; the signature covers the hash of the line before it
 * (so the whole chain up to there) and the public key of the next epoch. The signing key is then dropped:
 * whoever takes the host later holds only the newest key, which cannot sign for an older epoch.
 * See docs/audit.md for what this does and does not cover.
 */
import { createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { isLineHash, isLogId, parseRecordCount } from './anchor.js';

export const CHECKPOINT_TYPE = 'audit-checkpoint';
/** First word of each line of a sealing-key file. */
const SEALING_KEY_TAG = 'gatehouse-audit-sealing-key';
const SEALING_KEY_VERSION = 'v1';
const CHECKPOINT_CONTEXT = 'gatehouse audit checkpoint v1';

/** Unpadded base64url of a raw Ed25519 public key (32 bytes) or signature (64 bytes). */
const KEY_B64 = /^[A-Za-z0-9_-]{43}$/;
const SIGNATURE_B64 = /^[A-Za-z0-9_-]{86}$/;
const CHECKPOINT_FIELDS = ['seq', 'time', 'type', 'segment', 'epoch', 'nextKey', 'signature', 'prev', 'hash'];

/** The fields a checkpoint line carries besides seq, time, type, prev and hash. */
export interface CheckpointFields {
  /** seq of the record that opened this segment. */
  segment: number;
  epoch: number;
  nextKey: string;
  signature: string;
}

/** A checkpoint as the verifier needs it. */
export interface Checkpoint extends CheckpointFields {
  seq: number;
  time: string;
  prev: string;
}

/** One line of a sealing-key file: the first public key of the segment of log `logId` opened at `segment`. */
export interface SealingKey {
  logId: string;
  segment: number;
  /**
   * The writer checkpoints at least every this many records. Kept beside the key, so that removing
   * checkpoints (and re-chaining what they sealed) shows as a gap longer than the writer ever leaves.
   */
  everyRecords: number;
  publicKey: string;
}

/** The most records a writer that checkpoints every `everyRecords` leaves between two checkpoints (a records-dropped notice may ride along). */
export function maxGap(everyRecords: number): number {
  return everyRecords + 1;
}

function isSeq(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

/** What a checkpoint's signature covers: every field of the line but the self-hash, and the log id. */
export function checkpointMessage(logId: string, checkpoint: Omit<Checkpoint, 'signature'>): Buffer {
  const { segment, seq, time, epoch, nextKey, prev } = checkpoint;
  return Buffer.from(`${CHECKPOINT_CONTEXT}\n${logId}\n${segment}\n${seq}\n${time}\n${epoch}\n${nextKey}\n${prev}`);
}

/**
 * Checks the shape of a parsed checkpoint record (its hash was checked by the line parser). Returns the
 * checkpoint, or the reason it is not one. Extra fields are refused: the signature would not cover them.
 */
export function parseCheckpoint(record: Record<string, unknown>): Checkpoint | string {
  const keys = Object.keys(record);
  if (keys.length !== CHECKPOINT_FIELDS.length || keys.some((key, index) => key !== CHECKPOINT_FIELDS[index])) {
    return `a checkpoint has exactly the fields ${CHECKPOINT_FIELDS.join(', ')} in that order`;
  }
  const { seq, time, type, segment, epoch, nextKey, signature, prev } = record;
  if (type !== CHECKPOINT_TYPE) return `not a "${CHECKPOINT_TYPE}" record`;
  if (!isSeq(seq)) return 'checkpoint without a valid "seq"';
  if (typeof time !== 'string' || Number.isNaN(Date.parse(time))) return 'checkpoint without a valid "time"';
  if (!isSeq(segment) || segment >= seq) return 'checkpoint without a valid "segment" (the seq of the record that opened it)';
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) return 'checkpoint without a valid "epoch"';
  if (typeof nextKey !== 'string' || !KEY_B64.test(nextKey)) return 'checkpoint without a valid "nextKey" (32 bytes, base64url)';
  if (typeof signature !== 'string' || !SIGNATURE_B64.test(signature)) return 'checkpoint without a valid "signature" (64 bytes, base64url)';
  if (typeof prev !== 'string' || !isLineHash(prev)) return 'checkpoint without a valid "prev"';
  return { seq, time, segment, epoch, nextKey, signature, prev };
}

/** Whether `value` looks like a raw Ed25519 public key in base64url. */
export function isSealingPublicKey(value: unknown): value is string {
  return typeof value === 'string' && KEY_B64.test(value);
}

function publicKeyObject(publicKey: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKey }, format: 'jwk' });
}

/** Whether `checkpoint` is signed by `publicKey` (base64url). Never throws. */
export function checkpointSignatureValid(logId: string, checkpoint: Checkpoint, publicKey: string): boolean {
  try {
    return verify(null, checkpointMessage(logId, checkpoint), publicKeyObject(publicKey), Buffer.from(checkpoint.signature, 'base64url'));
  } catch {
    return false;
  }
}

function newKeyPair(): { privateKey: KeyObject; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  return { privateKey, publicKey: jwk.x as string };
}

/**
 * The writer's side: holds only the current epoch's private key, in memory. Node cannot wipe a KeyObject;
 * dropping the only reference lets OpenSSL free (and clear) it when it is collected.
 */
export class Sealer {
  readonly firstKey: string;
  #key: KeyObject | undefined;
  #epoch = 0;

  constructor() {
    const { privateKey, publicKey } = newKeyPair();
    this.#key = privateKey;
    this.firstKey = publicKey;
  }

  /** Signs a checkpoint at `seq` after the line whose hash is `prev`, and moves to the next epoch. */
  seal(logId: string, head: { segment: number; seq: number; time: string; prev: string }): CheckpointFields {
    const current = this.#key;
    if (current === undefined) throw new Error('sealer used after it was destroyed');
    const next = newKeyPair();
    const unsigned = { ...head, epoch: this.#epoch, nextKey: next.publicKey };
    const signature = sign(null, checkpointMessage(logId, unsigned), current).toString('base64url');
    // Forward security: the key that signed this epoch is gone once it has signed the next epoch's key.
    this.#key = next.privateKey;
    this.#epoch += 1;
    return { segment: head.segment, epoch: unsigned.epoch, nextKey: next.publicKey, signature };
  }

  /** Drops the last key (on close: the final checkpoint is written; nothing more may be signed). */
  destroy(): void {
    this.#key = undefined;
  }
}

export function formatSealingKey(key: SealingKey): string {
  return `${SEALING_KEY_TAG} ${SEALING_KEY_VERSION} ${key.logId} ${key.segment} ${key.everyRecords} ${key.publicKey}`;
}

/** The most key lines a sealing-key file may hold (one per restart of the host); bounds a reader's memory. */
export const MAX_SEALING_KEYS = 100_000;
/** A sealing-key file holds one short line per restart of the host. */
export const MAX_SEALING_KEY_FILE_BYTES = MAX_SEALING_KEYS * 160;

/** The rest of a key line after its tag, cut short anywhere before its end (a torn write leaves such a start). */
const CUT_SHORT_REST = /^(?:v?|v1|v1 [0-9a-f]{0,32}|v1 [0-9a-f]{32} [0-9]*|v1 [0-9a-f]{32} [0-9]+ [0-9]*|v1 [0-9a-f]{32} [0-9]+ [0-9]+ [A-Za-z0-9_-]{0,42})$/;

/** Whether `line` is the start of a key line and nothing else: what a crash or a full disk leaves of one. */
function isCutShort(line: string): boolean {
  const space = line.indexOf(' ');
  if (space === -1) return SEALING_KEY_TAG.startsWith(line);
  return line.slice(0, space) === SEALING_KEY_TAG && CUT_SHORT_REST.test(line.slice(space + 1));
}

/**
 * Parses a sealing-key file: `gatehouse-audit-sealing-key v1 LOGID SEQ EVERY KEY` lines, one per segment in increasing order; blank
 * lines and lines starting with `#` are ignored. Returns the keys, or the reason the text is not such a file.
 *
 * A line cut short by a crash or a full disk (a newline-less last line, or one a later start ended) holds no
 * usable key: with `onTorn`, it is skipped and its line number reported there; without, it is the reason.
 */
export function parseSealingKeys(text: string, onTorn?: (line: number) => void): SealingKey[] | string {
  const keys = parseKeyLines(text, onTorn);
  if (typeof keys !== 'string' && keys.length === 0) return 'no sealing key in it';
  return keys;
}

/** {@link parseSealingKeys} without its demand for a key: what a writer appending to a new key file reads. */
export function parseKeyLines(text: string, onTorn?: (line: number) => void): SealingKey[] | string {
  const keys: SealingKey[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.startsWith('#')) continue;
    const where = `line ${index + 1}`;
    const key = parseKeyLine(line);
    if (typeof key === 'string') {
      // Only the start of a key line is taken for a torn one: any other malformed line may be a key someone damaged.
      if (!isCutShort(line)) return `${where}: ${key}`;
      if (onTorn === undefined) {
        return `${where} is torn: a key line cut short (by a crash or a full disk while it was written), so no record can have used its key; delete it from this copy, or read the file with onTorn`;
      }
      onTorn(index + 1);
      continue;
    }
    const { logId, segment, publicKey } = key;
    // The same line twice is refused here; a second key for a segment, or keys out of order, fail
    // verification of that log (seal-check.ts).
    const id = `${logId} ${segment} ${publicKey}`;
    if (seen.has(id)) return `${where}: a second key for segment ${segment} of log ${logId} (the same line twice)`;
    seen.add(id);
    keys.push(key);
    if (keys.length > MAX_SEALING_KEYS) return `more than ${MAX_SEALING_KEYS} keys`;
  }
  return keys;
}

/** One key line, or the reason it is not one. */
function parseKeyLine(line: string): SealingKey | string {
  const parts = line.split(' ');
  const [tag, version, logId, segmentText, everyText, publicKey] = parts;
  if (parts.length !== 6 || tag !== SEALING_KEY_TAG) return `expected "${SEALING_KEY_TAG} v1 LOGID SEQ EVERY KEY"`;
  if (version !== SEALING_KEY_VERSION) return `unknown version ${JSON.stringify(version)}`;
  if (logId === undefined || !isLogId(logId)) return 'the log id is not 32 hex digits';
  const segment = segmentText === undefined ? undefined : parseRecordCount(segmentText);
  if (segment === undefined) return 'the segment is not a record number';
  const everyRecords = everyText === undefined ? undefined : parseRecordCount(everyText);
  if (everyRecords === undefined) return 'the checkpoint interval is not a positive integer';
  if (!isSealingPublicKey(publicKey)) return 'the key is not 32 bytes of base64url';
  try {
    publicKeyObject(publicKey);
  } catch {
    return 'the key is not an Ed25519 public key';
  }
  return { logId, segment, everyRecords, publicKey };
}

