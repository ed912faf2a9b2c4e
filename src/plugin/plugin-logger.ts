import { formatHclogLine, type LogLevel } from '../transport/hclog.js';
import type { Logger } from '../logger.js';

/**
 * A plugin's logger: hclog JSON lines on stderr, the form a go-plugin host (or ours) parses into
 * structured records under the plugin's name.
 */
export function createPluginLogger(write: (line: string) => void, module?: string): Logger {
  const at =
    (level: LogLevel) =>
    (fields: Record<string, unknown>, message: string): void =>
      write(formatHclogLine(level, message, fields, module) + '\n');
  return { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
