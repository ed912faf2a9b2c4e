/**
 * pino's JSON log lines, which Node.js plugins that log with pino write to stderr:
 *
 *     {"level":30,"time":1733100000000,"pid":42,"hostname":"h","name":"kv","msg":"listening","port":1234}
 *
 * Read like hclog's: the numeric level becomes one of the host's five, `msg` the message, `name` the module
 * and `time` the plugin's timestamp, so a pino plugin's records keep their levels on the host.
 */
import { boundedFields, type LogLevel, type PluginLogRecord } from './hclog.js';

/** pino's default levels; fatal (60) has no level of its own on the host and is logged as error. */
const PINO_LEVELS: ReadonlyMap<number, LogLevel> = new Map([
  [10, 'trace'],
  [20, 'debug'],
  [30, 'info'],
  [40, 'warn'],
  [50, 'error'],
  [60, 'error'],
]);

/** pino's own bookkeeping, which the host records itself or does not need: not passed on as fields. */
const PINO_KEYS = new Set(['level', 'time', 'msg', 'name', 'pid', 'hostname', 'v']);

/** Latest time a pino `time` may name (year 9999): beyond it the line is not a record. */
const MAX_EPOCH_MS = 253_402_300_799_999;

/**
 * A pino record from a line's parsed JSON object, or undefined when it is not one. Only pino's six
 * default numeric levels count: a custom level could otherwise be made to look like anything.
 */
export function pinoRecord(record: Record<string, unknown>): PluginLogRecord | undefined {
  const level = typeof record.level === 'number' ? PINO_LEVELS.get(record.level) : undefined;
  if (level === undefined) return undefined;
  const message = record.msg ?? '';
  if (typeof message !== 'string') return undefined;
  const result: PluginLogRecord = { level, message, fields: boundedFields(record, (key) => PINO_KEYS.has(key)) };
  if (typeof record.name === 'string' && record.name !== '') result.module = record.name;
  const time = record.time;
  // pino writes epoch milliseconds by default; anything else is left out rather than guessed at.
  if (typeof time === 'number' && Number.isInteger(time) && time >= 0 && time <= MAX_EPOCH_MS) {
    result.timestamp = new Date(time).toISOString();
  }
  return result;
}
