import type { Logger } from '../logger.js';

/**
 * What one stream of a plugin's output (its stderr, its stdout) may make the host log per window: lines,
 * each a record the host parses and writes, and bytes, which fill its disk. Past either, lines are left
 * out of the log (never out of the tail kept to explain a crash) until the window ends; the first line
 * logged after that comes after a warning saying how many were left out. As journald's rate limit, a
 * window long enough for a burst (a plugin's start, a stack trace) to pass whole: 10,000 lines in 30 s.
 */
export const PLUGIN_LOG_WINDOW_MS = 30_000;
export const PLUGIN_LOG_LINES_PER_WINDOW = 10_000;
export const PLUGIN_LOG_BYTES_PER_WINDOW = 16 * 1024 * 1024;

export class LogBudget {
  private windowStart = Number.NEGATIVE_INFINITY;
  private lines = 0;
  private bytes = 0;
  private dropped = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Whether any line may still be logged in this window; one that may not is counted as left out. Asked before a
   * line is parsed: past the budget a flood costs no parsing either.
   */
  open(): boolean {
    this.startWindowIfOver();
    if (this.lines < PLUGIN_LOG_LINES_PER_WINDOW && this.bytes < PLUGIN_LOG_BYTES_PER_WINDOW) return true;
    this.dropped++;
    return false;
  }

  /**
   * Whether a record of `length` bytes, as the host writes it (escaped, JSON, UTF-8: see {@link loggedBytes}), may be
   * logged now; one that may not is counted as left out.
   */
  admit(length: number): boolean {
    this.startWindowIfOver();
    // Attack: a plugin writing lines at full speed, each a record the host parses and writes to its log.
    if (this.lines >= PLUGIN_LOG_LINES_PER_WINDOW || this.bytes + length > PLUGIN_LOG_BYTES_PER_WINDOW) {
      this.dropped++;
      return false;
    }
    this.lines++;
    this.bytes += length;
    return true;
  }

  private startWindowIfOver(): void {
    const now = this.now();
    if (now - this.windowStart >= PLUGIN_LOG_WINDOW_MS) {
      this.windowStart = now;
      this.lines = 0;
      this.bytes = 0;
    }
  }

  /**
   * admit(); a line that passes after some were left out is preceded by a warning saying how many, logged
   * through `logger` with `fields`.
   */
  pass(length: number, logger: Logger, fields: Record<string, unknown>): boolean {
    if (!this.admit(length)) return false;
    if (this.dropped > 0) {
      const dropped = this.dropped;
      this.dropped = 0;
      logger.warn(
        { ...fields, dropped },
        `the plugin wrote more output than the host logs in ${PLUGIN_LOG_WINDOW_MS / 1000} s (${PLUGIN_LOG_LINES_PER_WINDOW} lines, ` +
          `${PLUGIN_LOG_BYTES_PER_WINDOW} bytes): ${dropped} lines were not logged`,
      );
    }
    return true;
  }
}

/**
 * The bytes a record costs the host's log: its values as a JSON logger writes them. Attack: a line of control characters
 * (each escaped by oneLine, then by JSON: 7 bytes) or of CJK text (3 bytes of UTF-8 each) counted by its length in
 * characters wrote 3 to 7 times the budget.
 */
export function loggedBytes(message: string, fields?: Record<string, unknown>): number {
  return Buffer.byteLength(JSON.stringify(message)) + (fields === undefined ? 0 : Buffer.byteLength(JSON.stringify(fields)));
}
