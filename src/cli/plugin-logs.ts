/** The plugin's logs on stderr. */
import type { Logger, LogFn } from '../logger.js';
import { isPlainObject } from './json.js';
import { escapeControls } from './terminal.js';

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/**
 * Writes plugin logs to stderr: records at info and above, and every line the plugin wrote that is not
 * an hclog record (the host logs those at debug, but they are often all a failing plugin says).
 */
export function pluginLogger(json: boolean): Logger {
  const logAt =
    (level: Level): LogFn =>
    (fields, message) => {
      const stream = fields.stream === 'stderr' || fields.stream === 'stdout' ? fields.stream : undefined;
      if (stream === undefined && (level === 'trace' || level === 'debug')) return;
      const line = json
        ? JSON.stringify({ ...fields, level, time: new Date().toISOString(), msg: message })
        : humanLogLine(level, stream, fields, message);
      // Escaped: the plugin chose these bytes, and must not drive the terminal.
      process.stderr.write(`${escapeControls(line)}\n`);
    };
  return { trace: logAt('trace'), debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };
}

/** `[plugin] level: message {host fields, "fields": {the plugin's}}`. */
function humanLogLine(level: Level, stream: string | undefined, record: Record<string, unknown>, message: string): string {
  const name = typeof record.plugin === 'string' ? record.plugin : 'plugin';
  const { plugin: _plugin, pluginTime: _time, stream: _stream, fields: own, ...host } = record;
  // Nested, as the library's records keep them: a plugin's field named like the host's cannot pass for it.
  const shown = isPlainObject(own) && Object.keys(own).length > 0 ? { ...host, fields: own } : host;
  const suffix = Object.keys(shown).length === 0 ? '' : ` ${JSON.stringify(shown)}`;
  return `[${name}] ${stream ?? level}: ${message}${suffix}`;
}
