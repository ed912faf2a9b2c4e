/**
 * `gatehouse audit verify FILE [checks]`: checks an audit log's hash chain, its seal and an anchor kept
 * elsewhere, and prints what an auditor keeps for next time. `gatehouse audit anchor FILE`: prints (or
 * writes) the anchor of an intact log. `gatehouse audit show FILE [checks]`: verifies it the same way and
 * prints what ran, from the records it verified. Exit 0: intact and matching; 1: broken, mismatched or unreadable;
 * 2: usage error.
 */
import { isGatehouseError, GatehouseError } from '../errors.js';
import { formatAnchor, isLineHash, isLogId, MAX_ANCHOR_BYTES, parseAnchor, parseRecordCount, type AuditAnchor } from '../audit/anchor.js';
import { MAX_SEALING_KEY_FILE_BYTES, parseSealingKeys, type SealingKey } from '../audit/sealing.js';
import { TimelineBuilder } from '../audit/timeline.js';
import { checkAuditLog, type AuditFailure, type AuditReport } from '../audit/verify-log.js';
import { writeFileAtomic } from '../verify/atomic-file.js';
import { readLimited } from '../discover/untrusted-file.js';
import { parseCommandLine, usageError } from './command-line.js';
import { formatTimeline } from './audit-timeline.js';
import { escapeControls } from './terminal.js';

export interface Writer {
  write(text: string): unknown;
}

export interface AuditCommandIo {
  stdout: Writer;
  stderr: Writer;
}

const USAGE = 'usage: gatehouse audit verify FILE [--anchor A] [--log-id ID] [--records N] [--last-hash HEX] [--sealing-key K] [--require-sealed] [--json] | gatehouse audit show FILE [the same checks] [--json] | gatehouse audit anchor FILE [--out A] [--sealing-key K]';

const HELP = `Usage: gatehouse audit verify FILE [options]
       gatehouse audit show FILE [options]
       gatehouse audit anchor FILE [--out ANCHOR] [--sealing-key KEYS]

verify checks the audit log FILE: every line must be a JSON record whose own hash matches, whose seq
follows the previous one and whose prev is the hash of the previous line, starting from an
"audit-log-opened" record; each checkpoint must be signed by its epoch's key. It prints "ok: N records",
the log id, the last line's hash and how much is sealed, or names the first line that fails and why.

A chain holds no secret: a log cut at a line boundary, rewritten from some record on, or replaced by a
fresh log verifies on its own. Check it against what you kept elsewhere:
  --anchor ANCHOR      an anchor file from \`gatehouse audit anchor\` (log id, record count, hash)
  --log-id ID          the log id must be ID
  --records N          the log must hold at least N records
  --last-hash HEX      the hash of line N (of the last line without --records) must be HEX
  --sealing-key KEYS   the sealing-key file the log wrote (a copy kept off the host): every segment
                       must be sealed from the key it names, and none it names may be missing; if it
                       holds keys of other logs too, name this one with --log-id or --anchor
  --require-sealed     fail when records after the last checkpoint are not sealed yet
  --json               print one JSON object on stdout instead: the report ({"ok":true,...}), or
                       {"ok":false,"code","line","reason"} for a broken line, or {"ok":false,"code",
                       "message"} when a file cannot be read; usage errors stay on stderr

show verifies FILE the same way (the same options) and, only if it passes, prints what ran, in log
order, from the very records it verified: each time a host opened the log (its pid, user and machine,
and the writers before it that never closed it), each plugin process (what was verified before it ran:
digest, signing keys, manifest; the user it ran as; its pinned certificate; the kills sent; how it
ended and whether the host had asked), and each refusal with its reason. With --json, one object:
{"report", "timeline": {"segments", "runs", "refusals"}}.

anchor verifies FILE the same way and prints its anchor line (or writes it to --out ANCHOR); keep it
somewhere the host cannot write, and pass it to verify --anchor later.

Exit status: 0 intact and matching, 1 broken, mismatched or unreadable, 2 usage error.
See docs/audit.md for what each check does and does not prove.
`;

/** The first line of a report that --require-sealed fails. */
const UNSEALED_HEADING = 'chain intact, but not all sealed';
const OK_EXIT = 0;
const BROKEN_EXIT = 1;
const USAGE_EXIT = 2;

const OPTIONS = {
  anchor: { type: 'string' },
  'log-id': { type: 'string' },
  records: { type: 'string' },
  'last-hash': { type: 'string' },
  'sealing-key': { type: 'string' },
  'require-sealed': { type: 'boolean' },
  json: { type: 'boolean' },
  out: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** A file an option names, read bounded; a failure names the option, so that it is not taken for the log's. */
async function readOptionFile(option: string, file: string, maxBytes: number): Promise<string> {
  try {
    return (await readLimited(file, maxBytes, 'AUDIT_INVALID')).toString('utf8');
  } catch (error) {
    if (!isGatehouseError(error)) throw error;
    throw new GatehouseError(error.code, `${option} ${error.message}`, { cause: error });
  }
}

async function readAnchorFile(file: string): Promise<AuditAnchor> {
  const anchor = parseAnchor(await readOptionFile('--anchor', file, MAX_ANCHOR_BYTES));
  if (typeof anchor === 'string') throw new GatehouseError('AUDIT_INVALID', `--anchor ${file} is not an audit anchor: ${anchor}`);
  return anchor;
}

async function readSealingKeyFile(file: string, io: AuditCommandIo): Promise<SealingKey[]> {
  const text = await readOptionFile('--sealing-key', file, MAX_SEALING_KEY_FILE_BYTES);
  const keys = parseSealingKeys(text, (line) =>
    io.stderr.write(`${escapeControls(`gatehouse audit: note: ${file} line ${line} is torn (a key line cut short by a crash or a full disk): no record can have used it; skipped`)}\n`),
  );
  if (typeof keys === 'string') throw new GatehouseError('AUDIT_INVALID', `--sealing-key ${file} is not an audit sealing-key file: ${keys}`);
  return keys;
}

type Values = ReturnType<typeof parseCommandLine<typeof OPTIONS>>['values'];

/** The anchor from --anchor, with each of --log-id, --records and --last-hash replacing its field. */
async function anchorFrom(values: Values): Promise<AuditAnchor | undefined> {
  const anchor: AuditAnchor = values.anchor === undefined ? {} : await readAnchorFile(values.anchor);
  const logId = values['log-id'];
  if (logId !== undefined) {
    if (!isLogId(logId)) throw usageError('audit', '--log-id must be 32 hex digits');
    anchor.logId = logId;
  }
  if (values.records !== undefined) {
    const records = parseRecordCount(values.records);
    if (records === undefined) throw usageError('audit', '--records must be a positive integer');
    anchor.records = records;
  }
  const lastHash = values['last-hash'];
  if (lastHash !== undefined) {
    if (!isLineHash(lastHash)) throw usageError('audit', '--last-hash must be 64 hex digits');
    anchor.lastHash = lastHash;
  }
  return Object.keys(anchor).length === 0 ? undefined : anchor;
}

function describe(report: AuditReport, heading = 'ok'): string {
  // From the report's totals, not its list of segments, which names only the first few.
  const { segmentCount, sealedSegments, trustedSegments, sealedThrough, unsealed } = report.sealing;
  const restarts = Math.max(0, segmentCount - 1);
  const sealed = sealedSegments > 0
    ? `sealed: ${sealedThrough === 0 ? 'none yet' : `records 1 to ${sealedThrough}`}; not sealed yet: ${unsealed} after it; ${segmentCount} segment(s) (${restarts} restart(s)), first keys ${trustedSegments === segmentCount ? 'from the sealing-key file' : 'taken from the log itself (pass --sealing-key to check them)'}`
    : 'sealed: no (the log has no checkpoints)';
  return `${heading}: ${report.records} records\nlog id: ${report.logId}\nlast hash: ${report.lastHash}\n${sealed}\n`;
}

function failureLine(failure: AuditFailure): string {
  return `${escapeControls(`broken at line ${failure.line}: ${failure.reason}`)} [${failure.code}]\n`;
}

/** An auditor's tooling reads the outcome from one object, not from text meant for a person. */
function jsonLine(value: object): string {
  return `${JSON.stringify(value)}\n`;
}

/** Not sealed yet, for --require-sealed: the first record a checkpoint does not cover yet, as a broken line is named. */
function unsealedFailure(report: AuditReport): { line: number; reason: string; code: 'AUDIT_SEAL_INVALID' } {
  const { sealedThrough, unsealed, sealedSegments, segmentCount } = report.sealing;
  const reason = sealedSegments < segmentCount
    ? `${segmentCount - sealedSegments} of ${segmentCount} segment(s) opened without a sealing key`
    : `${unsealed} record(s) after the last checkpoint`;
  return { line: sealedThrough + 1, reason, code: 'AUDIT_SEAL_INVALID' };
}

export async function auditCommand(
  argv: readonly string[],
  io: AuditCommandIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  // Set once the command line is read: from then on, every outcome is one JSON object on stdout.
  let json = false;
  try {
    const { values, positionals } = parseCommandLine('audit', argv, OPTIONS);
    if (values.help === true) {
      io.stdout.write(HELP);
      return OK_EXIT;
    }
    const [action, file, ...extra] = positionals;
    if (action === undefined) throw usageError('audit', 'no action given');
    if (action !== 'verify' && action !== 'anchor' && action !== 'show') throw usageError('audit', `unknown action ${JSON.stringify(action)}`);
    if (file === undefined) throw usageError('audit', 'no FILE given');
    if (extra.length > 0) throw usageError('audit', 'more than one FILE given');
    if (action === 'anchor' && (values.anchor ?? values['log-id'] ?? values.records ?? values['last-hash'] ?? values['require-sealed']) !== undefined) {
      throw usageError('audit', 'anchor takes only --out and --sealing-key');
    }
    if (action !== 'anchor' && values.out !== undefined) throw usageError('audit', '--out is for anchor');
    if (action === 'anchor' && values.json !== undefined) throw usageError('audit', '--json is for verify and show (an anchor line is already one field per word)');
    json = values.json === true;
    const anchor = await anchorFrom(values);
    const sealingKeys = values['sealing-key'] === undefined ? undefined : await readSealingKeyFile(values['sealing-key'], io);
    // show builds what ran from the records as they pass their checks: one read, so what it shows is what was verified.
    const timeline = action === 'show' ? new TimelineBuilder() : undefined;
    const result = await checkAuditLog(file, { anchor, sealingKeys, ...(timeline ? { onRecord: (record) => timeline.add(record) } : {}) });
    if (!result.ok) {
      io.stdout.write(json ? jsonLine({ ok: false, line: result.line, code: result.code, reason: result.reason }) : failureLine(result));
      // Nothing of a log that does not verify is shown: a record after the break, or before an altered one, proves nothing.
      if (timeline !== undefined && !json) io.stdout.write('nothing shown: a log that does not verify says nothing an auditor can rely on\n');
      return BROKEN_EXIT;
    }
    if (action === 'anchor') {
      const line = formatAnchor({ logId: result.logId, records: result.records, lastHash: result.lastHash });
      if (values.out === undefined) io.stdout.write(line);
      else await writeFileAtomic(values.out, line, 0o644);
      return OK_EXIT;
    }
    // Records after the last checkpoint can still be altered by whoever holds the host; some audits cannot accept that.
    const unsealed = values['require-sealed'] === true && (result.sealing.unsealed > 0 || result.sealing.sealedSegments < result.sealing.segmentCount)
      ? unsealedFailure(result)
      : undefined;
    if (timeline !== undefined) {
      const shown = timeline.finish();
      if (json) io.stdout.write(jsonLine(unsealed === undefined ? { report: result, timeline: shown } : { ok: false, ...unsealed, report: result }));
      else if (unsealed !== undefined) io.stdout.write(`${describe(result, UNSEALED_HEADING)}not sealed: ${unsealed.reason} [${unsealed.code}]\nnothing shown: --require-sealed\n`);
      else io.stdout.write(`${describe(result)}${formatTimeline(shown)}`);
    } else if (json) {
      io.stdout.write(jsonLine(unsealed === undefined ? result : { ...result, ok: false, ...unsealed }));
    } else {
      // A run that fails must not open with "ok": a reader who stops at the first line would take it for a pass.
      io.stdout.write(describe(result, unsealed === undefined ? 'ok' : UNSEALED_HEADING));
      if (unsealed !== undefined) io.stdout.write(`not sealed: ${unsealed.reason} [${unsealed.code}]\n`);
    }
    return unsealed === undefined ? OK_EXIT : BROKEN_EXIT;
  } catch (error) {
    if (!isGatehouseError(error)) throw error;
    if (error.code !== 'USAGE' && json) {
      io.stdout.write(jsonLine({ ok: false, code: error.code, message: error.message }));
      return BROKEN_EXIT;
    }
    if (error.code === 'USAGE') {
      io.stderr.write(`${escapeControls(`gatehouse audit: ${error.message}`)}\n${USAGE}\n`);
      return USAGE_EXIT;
    }
    io.stderr.write(`${escapeControls(`gatehouse audit: ${error.message}`)} [${error.code}]\n`);
    return BROKEN_EXIT;
  }
}
