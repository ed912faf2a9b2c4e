/**
 * `gatehouse audit verify FILE`: checks an audit log's hash chain and names its first broken record.
 * Exit 0: intact; 1: broken or unreadable; 2: usage error.
 */
import { isGatehouseError } from '../errors.js';
import { verifyAuditLog } from '../audit/verify-log.js';

export interface Writer {
  write(text: string): unknown;
}

export interface AuditCommandIo {
  stdout: Writer;
  stderr: Writer;
}

const HELP = `Usage: gatehouse audit verify FILE

Checks the hash chain of the audit log FILE: every line must be a JSON record whose own hash matches,
whose seq follows the previous one and whose prev is the hash of the previous line, starting from an
"audit-log-opened" record. Prints "ok: N records", or "broken at line N: reason" for the first broken
record. An intact chain shows that no record was edited, deleted or reordered after the fact, short of a
rewrite of the whole log: compare the last line's hash with a copy kept elsewhere (see docs/audit.md).

Exit status: 0 intact, 1 broken or unreadable, 2 usage error.
`;

const OK_EXIT = 0;
const BROKEN_EXIT = 1;
const USAGE_EXIT = 2;

/** Replaces control characters, so a hostile file name cannot drive the user's terminal. */
function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function usageProblem(action: string | undefined, file: string | undefined, extra: readonly string[]): string | undefined {
  if (action === undefined) return 'no action given';
  if (action !== 'verify') return `unknown action ${JSON.stringify(action)}`;
  if (file === undefined) return 'no FILE given';
  if (file.startsWith('-')) return `unknown option ${JSON.stringify(file)}`;
  if (extra.length > 0) return 'more than one FILE given';
  return undefined;
}

export async function auditCommand(
  argv: readonly string[],
  io: AuditCommandIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(HELP);
    return OK_EXIT;
  }
  const [action, file, ...extra] = argv;
  const problem = usageProblem(action, file, extra);
  if (problem !== undefined || file === undefined) {
    io.stderr.write(`${escapeControls(`gatehouse audit: ${problem ?? 'no FILE given'}`)} (usage: gatehouse audit verify FILE)\n`);
    return USAGE_EXIT;
  }
  try {
    const result = await verifyAuditLog(file);
    if (result.ok) {
      io.stdout.write(`ok: ${result.records} records\n`);
      return OK_EXIT;
    }
    io.stdout.write(`broken at line ${result.line}: ${escapeControls(result.reason)}\n`);
    return BROKEN_EXIT;
  } catch (error) {
    if (!isGatehouseError(error)) throw error;
    io.stderr.write(`${escapeControls(`gatehouse audit: ${error.message}`)}\n`);
    return BROKEN_EXIT;
  }
}
