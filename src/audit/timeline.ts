// What ran, told from an audit log's records: each host segment, each plugin process from its verdict to its end,
// and every refusal. Built from records that passed the chain checks as they were read (checkAuditLog's onRecord),
// so that what is shown is what was verified; memory grows with launches and refusals, not with records.
import type { ChainRecord } from './verify-log.js';
import { GENESIS_TYPE, REOPENED_TYPE } from './verify-log.js';

/** A host's stretch of the log: from its opening record to the next. */
export interface TimelineSegment {
  seq: number;
  time: string;
  reopened: boolean;
  /** The host process and user that wrote it (logs written before it was recorded have none). */
  host?: Record<string, unknown>;
  /** Earlier writers that never closed the log: their last records may be lost, their plugins died with them. */
  notClosedBy?: readonly number[];
}

/** What was verified before a launch (its `verification` record). */
export interface TimelineVerdict {
  sha256: string;
  keyIds: readonly string[];
  manifestVersion?: number;
  manifestPath?: string;
  version?: string;
}

/** One plugin process, from its launch to its end, as far as the log says. */
export interface TimelineRun {
  /** The seq of its launch record. */
  seq: number;
  plugin: string;
  pid: number;
  launched: string;
  /** The user and group it ran as. */
  uid?: number;
  gid?: number;
  command?: string;
  verified?: TimelineVerdict;
  /** When its certificate was pinned, and which. */
  connected?: { time: string; peerCertificateSha256: string };
  kills: { time: string; method: string; reason?: string }[];
  exit?: { time: string; code: number | null; signal: string | null; stoppedByHost?: boolean };
}

export interface TimelineRefusal {
  seq: number;
  time: string;
  plugin?: string;
  code: string;
  message: string;
  manifestPath?: string;
  file?: string;
  found?: string;
  signed?: string;
}

export interface Timeline {
  segments: TimelineSegment[];
  runs: TimelineRun[];
  refusals: TimelineRefusal[];
}

const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const count = (value: unknown): number | undefined => (typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined);
const texts = (value: unknown): string[] => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);

/** `fields` without those that are undefined: a record's optional field absent, not present as undefined. */
function defined<T extends Record<string, unknown>>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<T>;
}

export class TimelineBuilder {
  private readonly segments: TimelineSegment[] = [];
  private readonly runs: TimelineRun[] = [];
  private readonly refusals: TimelineRefusal[] = [];
  /** The live runs by pid: a later launch with the same pid is another process. */
  private readonly byPid = new Map<number, TimelineRun>();
  /** Accepted verdicts not yet matched to a launch, by plugin: the launch that follows runs from its sealed copy. */
  private readonly verdicts = new Map<string, (TimelineVerdict & { sealedPath?: string })[]>();

  add(record: ChainRecord): void {
    const f = record.fields;
    const time = text(f.time) ?? '';
    switch (record.type) {
      case GENESIS_TYPE:
      case REOPENED_TYPE: {
        // A key a crashed start left unused opens no stretch of its own.
        if (f.unusedKey === true) return;
        const host = typeof f.host === 'object' && f.host !== null ? (f.host as Record<string, unknown>) : undefined;
        const notClosedBy = Array.isArray(f.notClosedBy) ? f.notClosedBy.filter((pid): pid is number => count(pid) !== undefined) : undefined;
        this.segments.push({ seq: record.seq, time, reopened: record.type === REOPENED_TYPE, ...defined({ host, notClosedBy }) });
        // A host that opens the log anew ran none of the plugins before it.
        this.byPid.clear();
        this.verdicts.clear();
        return;
      }
      case 'verification': {
        const plugin = text(f.plugin);
        const sha256 = text(f.sha256);
        if (plugin === undefined || sha256 === undefined || f.result !== 'accepted') return;
        const verdict = defined({
          sha256,
          keyIds: texts(f.keyIds),
          manifestVersion: count(f.manifestVersion),
          manifestPath: text(f.manifestPath),
          version: text(f.version),
          sealedPath: text(f.sealedPath),
        }) as TimelineVerdict & { sealedPath?: string };
        const pending = this.verdicts.get(plugin);
        if (pending === undefined) this.verdicts.set(plugin, [verdict]);
        else pending.push(verdict);
        return;
      }
      case 'launch': {
        const plugin = text(f.plugin);
        const pid = count(f.pid);
        if (plugin === undefined || pid === undefined) return;
        const argv = texts(f.argv);
        const command = argv[0];
        const run: TimelineRun = { seq: record.seq, plugin, pid, launched: time, ...defined({ uid: count(f.uid), gid: count(f.gid), command }), kills: [] };
        const verdict = this.takeVerdict(plugin, argv);
        if (verdict !== undefined) run.verified = verdict;
        this.runs.push(run);
        this.byPid.set(pid, run);
        return;
      }
      case 'connected': {
        const run = this.runOf(f);
        const peerCertificateSha256 = text(f.peerCertificateSha256);
        if (run !== undefined && peerCertificateSha256 !== undefined) run.connected = { time, peerCertificateSha256 };
        return;
      }
      case 'kill': {
        const method = text(f.method);
        if (method !== undefined) this.runOf(f)?.kills.push({ time, method, ...defined({ reason: text(f.reason) }) });
        return;
      }
      case 'exit': {
        const run = this.runOf(f);
        if (run === undefined) return;
        const stoppedByHost = typeof f.stoppedByHost === 'boolean' ? f.stoppedByHost : undefined;
        run.exit = { time, code: count(f.code) ?? null, signal: text(f.signal) ?? null, ...defined({ stoppedByHost }) };
        this.byPid.delete(run.pid);
        return;
      }
      case 'refusal': {
        const code = text(f.code);
        if (code === undefined) return;
        this.refusals.push({
          seq: record.seq,
          time,
          code,
          message: text(f.message) ?? '',
          ...defined({ plugin: text(f.plugin), manifestPath: text(f.manifestPath), file: text(f.file), found: text(f.found), signed: text(f.signed) }),
        });
        return;
      }
      default:
    }
  }

  finish(): Timeline {
    return { segments: this.segments, runs: this.runs, refusals: this.refusals };
  }

  private runOf(fields: Record<string, unknown>): TimelineRun | undefined {
    const pid = count(fields.pid);
    return pid === undefined ? undefined : this.byPid.get(pid);
  }

  /**
   * The verdict whose sealed copy the launch runs (launches of one plugin may overlap): its command, or the script a system
   * interpreter runs. A verdict that names its copy is never given to a launch running something else (a plain launch() of
   * the same name after a verified launch failed would be shown as verified); only verdicts of logs that named no copy are
   * matched by order, the oldest first.
   */
  private takeVerdict(plugin: string, argv: readonly string[]): TimelineVerdict | undefined {
    const pending = this.verdicts.get(plugin);
    if (pending === undefined || pending.length === 0) return undefined;
    const runs = (sealedPath: string): boolean => argv.slice(0, 2).some((arg) => arg.startsWith(`${sealedPath}/`));
    let index = pending.findIndex((verdict) => verdict.sealedPath !== undefined && runs(verdict.sealedPath));
    // A leftover verdict of a copy that never ran is no evidence for another launch: it is shown unverified.
    if (index === -1) index = pending.findIndex((verdict) => verdict.sealedPath === undefined);
    if (index === -1) return undefined;
    const [taken] = pending.splice(index, 1);
    if (taken === undefined) return undefined;
    const { sealedPath: _sealedPath, ...verdict } = taken;
    return verdict;
  }
}
