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

  /** Whether a line of `length` characters may be logged now; one that may not is counted as left out. */
  admit(length: number): boolean {
    const now = this.now();
    if (now - this.windowStart >= PLUGIN_LOG_WINDOW_MS) {
      this.windowStart = now;
      this.lines = 0;
      this.bytes = 0;
    }
    // Attack: a plugin writing lines at full speed, each a record the host parses and writes to its log.
    if (this.lines >= PLUGIN_LOG_LINES_PER_WINDOW || this.bytes + length > PLUGIN_LOG_BYTES_PER_WINDOW) {
      this.dropped++;
      return false;
    }
    this.lines++;
    this.bytes += length;
    return true;
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
