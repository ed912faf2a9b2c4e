/**
 * The verifier's side of forward-secure sealing: follows each segment's key chain through its checkpoints
 * and, given the sealing-key file kept elsewhere, checks every segment starts from the key it names.
 */
import { CHECKPOINT_TYPE, checkpointSignatureValid, isSealingPublicKey, maxGap, parseCheckpoint, type SealingKey } from './sealing.js';

export type SealFailureCode = 'AUDIT_INVALID' | 'AUDIT_SEAL_INVALID';

export interface SealProblem {
  reason: string;
  code: SealFailureCode;
}

/** One segment of a log: from its opening record (the first open, or a restart) to the next. */
export interface SegmentReport {
  /** seq of the record that opened it. */
  opened: number;
  sealed: boolean;
  /** Whether its first key came from the sealing-key file (true) or only from the log itself (false). */
  keyTrusted: boolean;
  checkpoints: number;
  /** seq of its last checkpoint (0 when none): every record up to it is sealed. */
  sealedThrough: number;
}

export interface SealingReport {
  segments: SegmentReport[];
  /** seq of the last checkpoint in the log (0 when none). */
  sealedThrough: number;
  /** Records after the last checkpoint: whoever holds the host can still alter or remove them. */
  unsealed: number;
}

interface Segment extends SegmentReport {
  key: string | undefined;
  epoch: number;
  every: number;
  /** Records since the last checkpoint (or since the segment opened, its opening record included). */
  since: number;
}

/** The fields of a parsed line the checker needs. */
interface Line {
  seq: number;
  type: string;
  fields: Record<string, unknown>;
}

export class SegmentChecker {
  readonly #trusted: readonly SealingKey[] | undefined;
  readonly #segments: Segment[] = [];

  constructor(trusted: readonly SealingKey[] | undefined) {
    this.#trusted = trusted;
  }

  /** Checks one line that already passed the chain checks; `opens` says it opens a segment. */
  check(logId: string, line: Line, opens: boolean): SealProblem | undefined {
    if (opens) return this.#open(logId, line);
    const current = this.#segments[this.#segments.length - 1];
    if (line.type !== CHECKPOINT_TYPE) {
      if (current === undefined || current.key === undefined) return undefined;
      current.since += 1;
      // The writer never leaves more records than this unsealed: a longer run means checkpoints were removed.
      if (current.since > maxGap(current.every)) {
        return { reason: `more than ${maxGap(current.every)} records without a checkpoint in a segment sealed every ${current.every} (checkpoints were removed)`, code: 'AUDIT_SEAL_INVALID' };
      }
      return undefined;
    }
    const checkpoint = parseCheckpoint(line.fields);
    if (typeof checkpoint === 'string') return { reason: checkpoint, code: 'AUDIT_INVALID' };
    const segment = current;
    if (segment === undefined || segment.opened !== checkpoint.segment) {
      return { reason: `a checkpoint for the segment opened at seq ${checkpoint.segment}, inside another segment (moved from elsewhere)`, code: 'AUDIT_SEAL_INVALID' };
    }
    if (segment.key === undefined) return { reason: 'a checkpoint in a segment that was opened without a sealing key', code: 'AUDIT_SEAL_INVALID' };
    // The epoch must be the next in this chain: an older checkpoint cannot be replayed, none skipped.
    if (checkpoint.epoch !== segment.epoch) {
      return { reason: `checkpoint of epoch ${checkpoint.epoch} where epoch ${segment.epoch} was expected (checkpoints removed or replayed)`, code: 'AUDIT_SEAL_INVALID' };
    }
    // The heart of forward security: each epoch's key comes only from the checkpoint before it, so a key
    // taken from the host later cannot sign for an earlier epoch (the flaw of CVE-2023-31439 in journald).
    if (!checkpointSignatureValid(logId, checkpoint, segment.key)) {
      return { reason: `checkpoint of epoch ${checkpoint.epoch} is not signed by that epoch's key (the records before it were altered, or the checkpoint forged)`, code: 'AUDIT_SEAL_INVALID' };
    }
    segment.key = checkpoint.nextKey;
    segment.epoch += 1;
    segment.checkpoints += 1;
    segment.sealedThrough = checkpoint.seq;
    segment.since = 0;
    return undefined;
  }

  #open(logId: string, line: Line): SealProblem | undefined {
    const own = line.fields.sealingKey;
    const every = line.fields.sealEvery;
    if (own !== undefined && !isSealingPublicKey(own)) return { reason: 'the "sealingKey" field is not an Ed25519 public key', code: 'AUDIT_INVALID' };
    if (own !== undefined && (typeof every !== 'number' || !Number.isSafeInteger(every) || every < 1)) {
      return { reason: 'a sealed segment without a valid "sealEvery" field', code: 'AUDIT_INVALID' };
    }
    let keyTrusted = false;
    if (this.#trusted !== undefined) {
      const forLog = this.#trusted.filter((key) => key.logId === logId);
      // A whole file swapped for another sealed log: its own keys chain fine, but not from ours.
      if (forLog.length === 0) return { reason: `the sealing-key file has no key for log ${logId} (the file was replaced by another log)`, code: 'AUDIT_SEAL_INVALID' };
      // Turning sealing off on restart would leave everything after it unprotected.
      if (own === undefined) return { reason: `the segment opened at seq ${line.seq} is not sealed`, code: 'AUDIT_SEAL_INVALID' };
      const expected = forLog.filter((key) => key.segment === line.seq);
      if (expected.length === 0) {
        return { reason: `the sealing-key file has no key for the segment opened at seq ${line.seq} (a restart the file does not know of: use a newer copy of it, or someone else started this segment)`, code: 'AUDIT_SEAL_INVALID' };
      }
      // More than one key for a segment: starts that crashed before their first record left theirs unused.
      if (!expected.some((key) => key.publicKey === own && key.everyRecords === every)) {
        return { reason: `the segment opened at seq ${line.seq} starts from another key or interval than the sealing-key file's (the log was replaced or rewritten)`, code: 'AUDIT_SEAL_INVALID' };
      }
      keyTrusted = true;
    }
    this.#segments.push({
      opened: line.seq,
      sealed: own !== undefined,
      keyTrusted,
      checkpoints: 0,
      sealedThrough: 0,
      key: own,
      epoch: 0,
      every: typeof every === 'number' ? every : 0,
      since: 1,
    });
    return undefined;
  }

  /** After the last line (seq `lastSeq`): every trusted segment must still be there. */
  finish(logId: string, lastSeq: number): SealingReport | SealProblem {
    if (this.#trusted !== undefined) {
      const present = new Set(this.#segments.map((segment) => segment.opened));
      const missing = this.#trusted.find((key) => key.logId === logId && !present.has(key.segment));
      // The key file outlives a cut: a segment it knows of that the log no longer holds was cut off.
      if (missing !== undefined) {
        return { reason: `the sealing-key file has a key for a segment opened at seq ${missing.segment}, which the log no longer holds (records were cut off the end)`, code: 'AUDIT_SEAL_INVALID' };
      }
    }
    const sealedThrough = this.#segments.reduce((last, segment) => Math.max(last, segment.sealedThrough), 0);
    const anySealed = this.#segments.some((segment) => segment.sealed);
    return {
      segments: this.#segments.map(({ opened, sealed, keyTrusted, checkpoints, sealedThrough: through }) => ({ opened, sealed, keyTrusted, checkpoints, sealedThrough: through })),
      sealedThrough,
      unsealed: anySealed ? lastSeq - sealedThrough : lastSeq,
    };
  }
}
