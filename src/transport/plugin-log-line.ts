/** A plugin's stderr line read as a log record: hclog's JSON (Go plugins, our SDK) or pino's (Node plugins). */
import { hclogRecord, parseJsonObjectLine, type LogLevel, type PluginLogRecord } from './hclog.js';
import { pinoRecord } from './pino.js';

/** One stderr line as a log record, hclog's or pino's, or undefined for plain text (parsed once). */
export function parsePluginLogLine(line: string): PluginLogRecord | undefined {
  const record = parseJsonObjectLine(line);
  if (record === undefined) return undefined;
  return hclogRecord(record) ?? pinoRecord(record);
}

/** The upper-case level prefixes go-plugin's host reads on a plain line, mapped to their levels. */
const PLAIN_LEVEL_PREFIX = /^\[(TRACE|DEBUG|INFO|WARN|ERROR)\]/;

/**
 * The level a plain (not JSON) stderr line names by its prefix, `[WARN] disk almost full` -> warn, as
 * go-plugin's host infers it (Go plugins that log with the standard library's log package do this);
 * undefined for any other line, which is logged at debug.
 */
export function plainLineLevel(line: string): LogLevel | undefined {
  const prefix = PLAIN_LEVEL_PREFIX.exec(line)?.[1];
  return prefix === undefined ? undefined : (prefix.toLowerCase() as LogLevel);
}
