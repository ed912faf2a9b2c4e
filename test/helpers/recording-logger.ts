import type { Logger } from '../../src/index.js';

export interface LogRecord {
  level: keyof Logger;
  fields: Record<string, unknown>;
  message: string;
}

/** A Logger that keeps every record, so a test can assert what the host logged. */
export function recordingLogger(): Logger & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at = (level: keyof Logger) => (fields: Record<string, unknown>, message: string) =>
    void records.push({ level, fields, message });
  return { records, trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
