import { silentLogger, type Logger } from '../logger.js';
import { LogBudget, loggedBytes } from './log-budget.js';
import { oneLine } from '../transport/peer-text.js';
import { parsePluginLogLine, plainLineLevel } from '../transport/plugin-log-line.js';

/** A plugin's stderr line longer than this is cut: a flood cannot grow the host's memory. */
export const MAX_STDERR_LINE_BYTES = 64 * 1024;
/** How many of the last stderr lines an error about a failed start carries. */
const STDERR_TAIL_LINES = 20;
/** Each kept tail line is cut further, so an error message stays readable. */
const STDERR_TAIL_LINE_CHARS = 512;
/** go-plugin's first line for a missing or wrong magic cookie (our serve() prints the same). */
const COOKIE_REFUSAL = 'This binary is a plugin.';

/**
 * A line that names an error: "Error: …", "TypeError [ERR_X]: …", Python's "ModuleNotFoundError: …", Go's "panic: …",
 * and the lines of Node's and V8's native crash boxes ("  #  Assertion failed: …", "# Fatal process OOM in …"), which
 * is how Node dies of a resource limit (open files, address space) before any JavaScript runs.
 */
const ERROR_LINE =
  /^(?:Uncaught )?(?:[\w$.]*(?:Error|Exception)(?: \[\w+\])?|panic|fatal error|Traceback \(most recent call last\)):|^\s*#\s+(?:Assertion failed|Fatal (?:error|process OOM))\b/;
/**
 * Lines a crash prints around the error that say nothing about it: blank, stack frames, Node's version footer, carets,
 * and of a native crash the box's bare "#" lines, its "----- Native stack trace -----" banners and numbered frames.
 */
const NOISE_LINE = /^\s*$|^\s+at |^\s+File "|^Node\.js v\d|^\s*\^+\s*$|^goroutine \d+ \[|^[{}]\s*$|^\s+\w+: .*,?$|^\s*#\s*$|^-{3,} .* -{3,}$|^\s*\d+: 0x[\da-f]+ /;

/**
 * The line of a plugin's last stderr lines that says what went wrong: the last one that names an error (an
 * hclog record at error level or a line shaped like an error, whichever came later), else the last line
 * that is not crash noise. Node ends a crash with "Node.js v20…" and Python with the exception; neither last
 * line alone is the answer. Later wins over hclog: a plugin that logged a failed call and kept serving, then
 * panicked, died of the panic, and quoting the older record would send whoever reads it after the wrong bug.
 */
export function errorLine(lines: readonly string[]): string | undefined {
  const texts = lines.map((line) => {
    const record = parsePluginLogLine(line);
    const level = record?.level ?? plainLineLevel(line);
    const text = record?.message ?? line;
    // A plain line without a level prefix is neither: a crash's own words are plain lines.
    return level === undefined ? { text, error: false, routine: false } : { text, error: level === 'error', routine: level !== 'error' && level !== 'warn' };
  });
  const found =
    texts.findLast((line) => line.error || (ERROR_LINE.test(line.text) && !line.text.startsWith('Traceback'))) ??
    // A record the plugin logged below warn is routine ("plugin address"), not what it said as it died.
    texts.findLast((line) => !line.routine && !NOISE_LINE.test(line.text));
  // A native crash box's line is quoted without its frame: "Assertion failed: …", not "#  Assertion failed: …".
  return found === undefined ? undefined : oneLine(found.text.trim().replace(/^#\s+/, ''));
}

/** `; the plugin said: "the error line"` (see errorLine), or nothing when no line names an error. */
export function said(lines: readonly string[]): string {
  const line = errorLine(lines);
  return line === undefined ? '' : `; the plugin said: ${JSON.stringify(line)}`;
}

/** Where a plugin's stdout lines go when the caller gave no handler: info records, made one line. */
export function stdoutToLogger(logger: Logger, pluginName: string, now: () => number = Date.now): (line: string) => void {
  const budget = new LogBudget(now);
  const fields = { plugin: pluginName, stream: 'stdout' };
  return (line) => {
    if (!budget.open()) return;
    const message = oneLine(line);
    if (budget.pass(loggedBytes(message), logger, fields)) logger.info({ ...fields }, message);
  };
}

/**
 * Routes a plugin's stderr into the host's logger: hclog and pino JSON lines become records at their level,
 * a plain line starting with go-plugin's `[TRACE]`..`[ERROR]` a record at that level, anything else a debug
 * record. The plugin's fields are nested under `fields` so that a plugin cannot
 * overwrite the host's own keys (`plugin`, `msg`, `level`...) in a record; its message and module are
 * made one line (the fields are data, which the logger encodes).
 */
export class PluginStderr {
  private readonly tail: string[] = [];
  /** Whether the plugin printed go-plugin's refusal of the magic cookie. */
  cookieRejected = false;
  private readonly budget: LogBudget;

  constructor(
    private readonly pluginName: string,
    private readonly logger: Logger,
    now: () => number = Date.now,
  ) {
    this.budget = new LogBudget(now);
  }

  line(text: string, truncated: boolean): void {
    this.tail.push(text.length > STDERR_TAIL_LINE_CHARS ? text.slice(0, STDERR_TAIL_LINE_CHARS) + '…' : text);
    if (this.tail.length > STDERR_TAIL_LINES) this.tail.shift();
    if (text.startsWith(COOKIE_REFUSAL)) this.cookieRejected = true;
    if (this.logger === silentLogger) return; // nobody reads the records: skip parsing on the hot path
    // Past the budget the line is in the tail above, not in the log: not parsed, not logged.
    if (!this.budget.open()) return;
    const context = { plugin: this.pluginName, stream: 'stderr' };
    const record = truncated ? undefined : parsePluginLogLine(text);
    if (record === undefined) {
      // A cut line is logged at debug whatever its prefix, as go-plugin logs its continuation lines.
      const level = (truncated ? undefined : plainLineLevel(text)) ?? 'debug';
      const message = oneLine(text);
      if (!this.budget.pass(loggedBytes(message), this.logger, context)) return;
      this.logger[level]({ ...context, ...(truncated ? { truncated } : {}) }, message);
      return;
    }
    const fields: Record<string, unknown> = { plugin: this.pluginName };
    if (record.module !== undefined) fields.module = oneLine(record.module);
    if (record.timestamp !== undefined) fields.pluginTime = record.timestamp;
    if (Object.keys(record.fields).length > 0) fields.fields = record.fields;
    const message = oneLine(record.message);
    // Charged as written: its message escaped, its fields as JSON.
    if (!this.budget.pass(loggedBytes(message, fields), this.logger, context)) return;
    this.logger[record.level](fields, message);
  }

  /** The last lines the plugin wrote, oldest first and made one line, for an error that explains a failed start. */
  lastLines(): string[] {
    // Escaped here, not per line: a plugin flooding stderr pays for none of it.
    return this.tail.map(oneLine);
  }

  /** The last lines as a person reads them: hclog records as "level: message", not JSON. */
  readableLines(): string[] {
    return this.tail.map((line) => {
      const record = parsePluginLogLine(line);
      return oneLine(record === undefined ? line : `${record.level}: ${record.message}`);
    });
  }

  /** The line that says what went wrong (see errorLine), if the plugin wrote anything. */
  errorLine(): string | undefined {
    return errorLine(this.tail);
  }

  /** `; the plugin said: "the error line"`, or nothing when no line names an error. */
  said(): string {
    return said(this.tail);
  }

  /**
   * For an error message: what the plugin said (see said()) on the first line, then its last lines on
   * the next ones; empty when the plugin wrote nothing.
   */
  describe(): string {
    if (this.tail.length === 0) return '';
    return `${this.said()}\nlast stderr lines:\n  ${this.readableLines().join('\n  ')}`;
  }
}
