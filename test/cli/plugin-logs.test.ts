// The human log lines of `gatehouse call`: who wrote what must stay readable.
import test from 'ava';
import { pluginLogger } from '../../src/cli/plugin-logs.js';

/** The lines `write` sends to stderr while it runs. */
function stderrOf(write: () => void): string[] {
  const lines: string[] = [];
  const original = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    write();
  } finally {
    process.stderr.write = original;
  }
  return lines;
}

test("plugin logs: the plugin's fields stay nested under fields, apart from the host's", (t) => {
  // Attack (of the reader): a plugin field named like the host's, merged in, would pass for it.
  const logger = pluginLogger(false);
  const lines = stderrOf(() =>
    logger.warn({ plugin: 'kv', pluginTime: 'now', attempt: 2, fields: { plugin: 'host', attempt: 9, key: 'k' } }, 'slow'),
  );
  t.deepEqual(lines, ['[kv] warn: slow {"attempt":2,"fields":{"plugin":"host","attempt":9,"key":"k"}}\n']);
  const bare = stderrOf(() => logger.info({ plugin: 'kv', fields: {} }, 'quiet'));
  t.deepEqual(bare, ['[kv] info: quiet\n']);
});
