/** A plugin's stderr line read as a log record: hclog's JSON (Go plugins, our SDK) or pino's (Node plugins). */
import { hclogRecord, parseJsonObjectLine, type PluginLogRecord } from './hclog.js';
import { pinoRecord } from './pino.js';

/** One stderr line as a log record, hclog's or pino's, or undefined for plain text (parsed once). */
export function parsePluginLogLine(line: string): PluginLogRecord | undefined {
  const record = parseJsonObjectLine(line);
  if (record === undefined) return undefined;
  return hclogRecord(record) ?? pinoRecord(record);
}
