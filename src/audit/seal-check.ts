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

/**
 * How many segments a report lists one by one; the rest are only counted. A crafted log can open a segment on
 * every line (each "audit-log-reopened" record opens one), so a list of them all would grow with the log until
 * the verifier ran out of heap: a few GB of such lines aborted it, where a plain log of that size verifies.
 */
export const MAX_REPORTED_SEGMENTS = 100;

export interface SealingReport {
  /** The first MAX_REPORTED_SEGMENTS segments, in log order; `segmentCount` counts them all. */
  segments: SegmentReport[];
  /** How many segments the log has: the one its first record opened, and one per restart. */
  segmentCount: number;
  /** How many of them are sealed (opened with a sealing key). */
  sealedSegments: number;
  /** How many of them start from a key in the sealing-key file (all of them when one was given, else none). */
  trustedSegments: number;
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

/** The sealing-key file's keys for one log. */
interface LogKeys {
  bySegment: Map<number, SealingKey>;
  /** Why the file keys a segment twice or out of order, and the lowest such segment: the log may be rewritten from there. */
  rekeyed: { segment: number; reason: string } | undefined;
  /** The other logs the file holds keys of, in file order. */
  others: string[];
}

/**
 * Indexes the keys of `logId` in file order. Each start of a log keys a segment above every earlier one, so
 * a second key for a segment, or one not above the key before it, is someone who reopened the log over its past.
 */
function keysOf(trusted: readonly SealingKey[], logId: string): LogKeys {
  const bySegment = new Map<number, SealingKey>();
  const others = new Set<string>();
  let highest = 0;
  let rekeyed: LogKeys['rekeyed'];
  for (const key of trusted) {
    if (key.logId !== logId) {
      others.add(key.logId);
      continue;
    }
    if (key.segment <= highest && (rekeyed === undefined || key.segment < rekeyed.segment)) {
      const what = bySegment.has(key.segment) ? 'a second key for the segment' : 'a key for the segment';
      const after = bySegment.has(key.segment) ? '' : ` after one for seq ${highest}`;
      rekeyed = {
        segment: key.segment,
        reason: `the sealing-key file has ${what} opened at seq ${key.segment} of log ${logId}${after} (each segment has one key, in increasing order: the log was reopened over its past, so this segment and those after it may be rewritten)`,
      };
    }
    highest = Math.max(highest, key.segment);
    if (!bySegment.has(key.segment)) bySegment.set(key.segment, key);
  }
  return { bySegment, rekeyed, others: [...others] };
}

/** Names the first few of `ids`, and how many more there are. */
function someOf(ids: readonly string[]): string {
  const shown = ids.slice(0, 3).join(', ');
  return ids.length > 3 ? `${shown} and ${ids.length - 3} more` : shown;
}

export class SegmentChecker {
  readonly #trusted: readonly SealingKey[] | undefined;
  /** Whether the auditor named the log they expect (its id was checked against theirs). */
  readonly #logNamed: boolean;
  #keys: LogKeys | undefined;
  /**
   * The sealing-key file's keys for this log that no segment has matched yet, in file order, as an iterator,
   * and the next of them. Segments open in increasing seq, and each must match a key, so a key passed over
   * is one whose segment the log no longer holds; the first such is kept for finish() to name.
   */
  #unmatchedKeys: Iterator<SealingKey, undefined> | undefined;
  #nextKey: SealingKey | undefined;
  #firstMissing: number | undefined;
  /**
   * Only the open segment and running totals are kept, never one entry per segment (but the first
   * MAX_REPORTED_SEGMENTS): a log of millions of restarts must verify in the memory of a plain one.
   */
  #current: Segment | undefined;
  readonly #reported: SegmentReport[] = [];
  #segmentCount = 0;
  #sealedSegments = 0;
  #trustedSegments = 0;
  #sealedThrough = 0;
  /** seq of the last checkpoint whose signature verified, in any segment: every record up to it is sealed. */
  #lastGoodCheckpoint = 0;

  constructor(trusted: readonly SealingKey[] | undefined, logNamed: boolean) {
    this.#trusted = trusted;
    this.#logNamed = logNamed;
  }

  /** Checks one line that already passed the chain checks; `opens` says it opens a segment. */
  check(logId: string, line: Line, opens: boolean): SealProblem | undefined {
    if (opens) return this.#open(logId, line);
    const current = this.#current;
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
      // The line named is the checkpoint; an auditor needs the records in doubt, which are those it alone seals.
      const good = this.#lastGoodCheckpoint;
      const before = good === 0 ? '' : `; records 1 to ${good} are sealed by the checkpoints before it`;
      return {
        reason: `checkpoint of epoch ${checkpoint.epoch} is not signed by that epoch's key: records ${good + 1} to ${checkpoint.seq - 1}, which it seals, were altered after it was made (or the checkpoint was forged)${before}`,
        code: 'AUDIT_SEAL_INVALID',
      };
    }
    this.#lastGoodCheckpoint = checkpoint.seq;
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
      const keys = (this.#keys ??= keysOf(this.#trusted, logId));
      // A whole file swapped for another sealed log: its own keys chain fine, but not from ours.
      if (keys.bySegment.size === 0) return { reason: `the sealing-key file has no key for log ${logId} (the file was replaced by another log)`, code: 'AUDIT_SEAL_INVALID' };
      // A log deleted with its local key file and replaced by a fresh one: the fresh log's key reaches K too, so
      // only the old log's keys, which nothing in this file answers, give it away.
      if (!this.#logNamed && keys.others.length > 0) {
        const logs = keys.others.length === 1 ? 'log' : 'logs';
        return {
          reason: `the sealing-key file also holds keys of ${logs} ${someOf(keys.others)}, which this file (log ${logId}) is not: it may have taken that log's place; name the log you expect (--log-id or an anchor)`,
          code: 'AUDIT_SEAL_INVALID',
        };
      }
      // A log cut back and restarted over its past gets new keys for old segment numbers, which would seal a rewrite.
      if (keys.rekeyed !== undefined && line.seq >= keys.rekeyed.segment) return { reason: keys.rekeyed.reason, code: 'AUDIT_SEAL_INVALID' };
      // Turning sealing off on restart would leave everything after it unprotected.
      if (own === undefined) return { reason: `the segment opened at seq ${line.seq} is not sealed`, code: 'AUDIT_SEAL_INVALID' };
      const expected = keys.bySegment.get(line.seq);
      if (expected === undefined) {
        return { reason: `the sealing-key file has no key for the segment opened at seq ${line.seq} (a restart the file does not know of: use a newer copy of it, or someone else started this segment)`, code: 'AUDIT_SEAL_INVALID' };
      }
      if (expected.publicKey !== own || expected.everyRecords !== every) {
        return { reason: `the segment opened at seq ${line.seq} starts from another key or interval than the sealing-key file's (the log was replaced or rewritten)`, code: 'AUDIT_SEAL_INVALID' };
      }
      this.#matchKey(keys, line.seq);
      keyTrusted = true;
    }
    this.#closeCurrent();
    this.#segmentCount += 1;
    if (own !== undefined) this.#sealedSegments += 1;
    if (keyTrusted) this.#trustedSegments += 1;
    this.#current = {
      opened: line.seq,
      sealed: own !== undefined,
      keyTrusted,
      checkpoints: 0,
      sealedThrough: 0,
      key: own,
      epoch: 0,
      every: typeof every === 'number' ? every : 0,
      since: 1,
    };
    return undefined;
  }

  /** Moves past the file's keys up to the one for the segment opened at `seq` (there is one: #open checked). */
  #matchKey(keys: LogKeys, seq: number): void {
    this.#unmatchedKeys ??= keys.bySegment.values();
    for (;;) {
      const next = this.#nextKey ?? this.#unmatchedKeys.next().value;
      this.#nextKey = undefined;
      if (next === undefined || next.segment === seq) return;
      // Keys run in increasing order (else keys.rekeyed fails the log): one below `seq` has no segment left.
      if (next.segment < seq) this.#firstMissing ??= next.segment;
      else {
        this.#nextKey = next;
        return;
      }
    }
  }

  /** Folds the open segment into the totals (and the report's first few), then forgets it. */
  #closeCurrent(): void {
    const segment = this.#current;
    if (segment === undefined) return;
    this.#sealedThrough = Math.max(this.#sealedThrough, segment.sealedThrough);
    if (this.#reported.length < MAX_REPORTED_SEGMENTS) {
      const { opened, sealed, keyTrusted, checkpoints, sealedThrough } = segment;
      this.#reported.push({ opened, sealed, keyTrusted, checkpoints, sealedThrough });
    }
    this.#current = undefined;
  }

  /** After the last line (seq `lastSeq`): every trusted segment must still be there. */
  finish(lastSeq: number): SealingReport | SealProblem {
    const keys = this.#keys;
    if (keys !== undefined) {
      if (keys.rekeyed !== undefined) return { reason: keys.rekeyed.reason, code: 'AUDIT_SEAL_INVALID' };
      // The key file outlives a cut: a segment it knows of that the log no longer holds was cut off.
      this.#unmatchedKeys ??= keys.bySegment.values();
      const missing = this.#firstMissing ?? (this.#nextKey ?? this.#unmatchedKeys.next().value)?.segment;
      if (missing !== undefined) {
        return { reason: `the sealing-key file has a key for a segment opened at seq ${missing}, which the log no longer holds (records were cut off the end)`, code: 'AUDIT_SEAL_INVALID' };
      }
    }
    this.#closeCurrent();
    const sealedThrough = this.#sealedThrough;
    return {
      segments: [...this.#reported],
      segmentCount: this.#segmentCount,
      sealedSegments: this.#sealedSegments,
      trustedSegments: this.#trustedSegments,
      sealedThrough,
      unsealed: this.#sealedSegments > 0 ? lastSeq - sealedThrough : lastSeq,
    };
  }
}
