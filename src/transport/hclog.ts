/**
 * hclog's JSON log lines, which go-plugin plugins write to stderr and their host re-logs:
 *
 *     {"@level":"info","@message":"listening","@module":"kv","@timestamp":"2024-01-02T03:04:05.000000Z","port":1234}
 *
 * The host applies a line-length limit before calling parseHclogLine; this module bounds everything else.
 */
import { GatehouseError } from '../errors.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

/** Fields kept from one record; the rest are dropped so one line cannot fill the host's log with keys. */
export const MAX_HCLOG_FIELDS = 64;
/** Levels of nesting kept in a field's value (the field itself is level 1); go-hclog's own fields are flat. */
export const MAX_FIELD_DEPTH = 16;
/** What stands for a value nested deeper. */
export const NESTED_TOO_DEEP = '[nested too deep]';

export interface PluginLogRecord {
  level: LogLevel;
  message: string;
  module?: string;
  /** As the plugin wrote it, checked to be an RFC 3339 timestamp. */
  timestamp?: string;
  /** The record's other keys, at most MAX_HCLOG_FIELDS of them; keys starting with "@" are not included. */
  fields: Record<string, unknown>;
}

const LEVEL = '@level';
const MESSAGE = '@message';
const MODULE = '@module';
const TIMESTAMP = '@timestamp';

/** RFC 3339 as hclog writes it (Go's "2006-01-02T15:04:05.000000Z07:00"), any number of fractional digits. */
const TIMESTAMP_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/**
 * Reads one stderr line as an hclog record, or returns undefined when it is not one; the host then logs
 * the line as plain debug text, as go-plugin does.
 *
 * Levels follow hclog's LevelFromString: the five names, any case, surrounding spaces ignored. An unknown
 * level ("fatal", "warning", "emergency") makes the line not a record rather than being mapped to
 * something: go-plugin does the same, and it means a plugin cannot invent a level to alarm the host.
 * A malformed @timestamp also makes the line not a record, again as in go-plugin.
 */
export function parseHclogLine(line: string): PluginLogRecord | undefined {
  const record = parseJsonObjectLine(line);
  return record === undefined ? undefined : hclogRecord(record);
}

/** A log line's JSON object, or undefined for anything else (ordinary text never reaches JSON.parse). */
export function parseJsonObjectLine(line: string): Record<string, unknown> | undefined {
  if (!line.trimStart().startsWith('{')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  return parsed as Record<string, unknown>;
}

/** An hclog record from a line's parsed JSON object, or undefined when the object is not one. */
export function hclogRecord(record: Record<string, unknown>): PluginLogRecord | undefined {
  const rawLevel = record[LEVEL];
  const message = record[MESSAGE];
  if (typeof rawLevel !== 'string' || typeof message !== 'string') return undefined;
  const level = rawLevel.trim().toLowerCase();
  // Bounded to the five: stops a plugin from inventing a severity the host would treat specially.
  if (!isLogLevel(level)) return undefined;

  const result: PluginLogRecord = { level, message, fields: {} };

  if (Object.hasOwn(record, MODULE)) {
    const module = record[MODULE];
    if (typeof module !== 'string') return undefined;
    if (module !== '') result.module = module;
  }
  if (Object.hasOwn(record, TIMESTAMP)) {
    const timestamp = record[TIMESTAMP];
    if (typeof timestamp !== 'string' || !TIMESTAMP_PATTERN.test(timestamp)) return undefined;
    result.timestamp = timestamp;
  }

  // "@" keys are hclog's own; keeping unknown ones out of `fields` stops a plugin from adding look-alike
  // metadata ("@pid", "@host") that a reader could mistake for something the host recorded.
  result.fields = boundedFields(record, (key) => key.startsWith('@'));
  return result;
}

/** The record's keys but those `skip` names, at most MAX_HCLOG_FIELDS of them, each nested at most MAX_FIELD_DEPTH deep. */
export function boundedFields(record: Record<string, unknown>, skip: (key: string) => boolean): Record<string, unknown> {
  const fields: [string, unknown][] = [];
  for (const key of Object.keys(record)) {
    if (fields.length >= MAX_HCLOG_FIELDS) break;
    if (skip(key)) continue;
    fields.push([key, boundedDepth(record[key], 1)]);
  }
  // fromEntries defines own properties: a "__proto__" key stays data and cannot change the prototype.
  return Object.fromEntries(fields);
}

/**
 * A field value with what is nested below MAX_FIELD_DEPTH replaced by a marker. Attack: a 64 KiB line
 * nests ~30,000 deep, and a host logger that serializes it recursively (JSON.stringify) overflows the
 * stack inside the stderr reader, an uncaught exception that kills the host.
 */
function boundedDepth(value: unknown, depth: number): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_FIELD_DEPTH) return NESTED_TOO_DEEP;
  if (Array.isArray(value)) return value.map((item) => boundedDepth(item, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, boundedDepth(item, depth + 1)]));
}

/** Go's "2006-01-02T15:04:05.000000Z07:00" in UTC; a Date has milliseconds, so the last three digits are 0. */
function formatTimestamp(now: Date): string {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new GatehouseError('INVALID_OPTIONS', 'log timestamp must be a valid Date');
  }
  return now.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * JSON has no bigint, and JSON.stringify writes an Error as `{}` (its fields are not enumerable), which
 * would drop the very thing a `logger.error({ err }, ...)` is for: go-hclog writes an error as its text.
 */
function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  return value instanceof Error ? String(value) : value;
}

/** One field value as JSON, or undefined to leave the key out (as JSON.stringify does for functions). */
function fieldJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value, jsonValue);
  } catch (error) {
    // Circular structures and throwing toJSON methods: a logger must not throw, so say what happened.
    const reason = error instanceof Error ? error.name : 'error';
    return JSON.stringify(`[unserializable: ${reason}]`);
  }
}

/**
 * One hclog JSON line without the newline. JSON escaping keeps any message on one line, so a message
 * cannot forge a second record. Field keys starting with "@" are left out: the four hclog keys come from
 * the arguments alone, and parseHclogLine would drop the others anyway.
 */
export function formatHclogLine(
  level: LogLevel,
  message: string,
  fields: Record<string, unknown> = {},
  module?: string,
  now: Date = new Date(),
): string {
  if (typeof level !== 'string' || !isLogLevel(level)) {
    throw new GatehouseError('INVALID_OPTIONS', `log level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  if (typeof message !== 'string') throw new GatehouseError('INVALID_OPTIONS', 'log message must be a string');
  if (module !== undefined && typeof module !== 'string') {
    throw new GatehouseError('INVALID_OPTIONS', 'log module must be a string');
  }
  const parts = [`"${LEVEL}":${JSON.stringify(level)}`, `"${MESSAGE}":${JSON.stringify(message)}`];
  if (module !== undefined && module !== '') parts.push(`"${MODULE}":${JSON.stringify(module)}`);
  parts.push(`"${TIMESTAMP}":${JSON.stringify(formatTimestamp(now))}`);
  for (const [key, value] of Object.entries(fields ?? {})) {
    if (key.startsWith('@')) continue;
    const json = fieldJson(value);
    if (json !== undefined) parts.push(`${JSON.stringify(key)}:${json}`);
  }
  return `{${parts.join(',')}}`;
}
