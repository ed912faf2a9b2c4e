// Property tests for the parsers of outside input that the per-module suites did not cover: the audit
// log's record lines (a log someone may have tampered with), strict JSON, and the rollback state file.
// The others are property-tested next to their modules (listed in SECURITY.md, T10).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { GatehouseError } from '../../src/errors.js';
import { parseRecordLine, sealLine } from '../../src/audit/verify-log.js';
import { FileRollbackState } from '../../src/verify/rollback-state.js';
import { parseStrictJson } from '../../src/verify/strict-json.js';
import { hostileText, throwsOnlyGatehouseErrors } from '../verify/fuzz.js';

const record = sealLine(JSON.stringify({ seq: 2, time: '2026-01-02T03:04:05.000Z', type: 'exit', prev: 'a'.repeat(64), plugin: 'kv', pid: 7 }));

test('property: an audit record line is a record or a reason, never an exception, for any bytes', (t) => {
  fc.assert(
    fc.property(fc.oneof(hostileText([record]), fc.string({ unit: 'binary' })), (text) => {
      const result = parseRecordLine(Buffer.from(text));
      return typeof result === 'string' || (typeof result === 'object' && Number.isSafeInteger(result.seq));
    }),
    { numRuns: 5000 },
  );
  t.like(parseRecordLine(Buffer.from(record)), { seq: 2, type: 'exit' });
});

test('property: an audit record line with any single byte changed is refused', (t) => {
  fc.assert(
    fc.property(fc.nat(record.length - 1), fc.integer({ min: 1, max: 255 }), (at, delta) => {
      const bytes = Buffer.from(record);
      bytes[at] = ((bytes[at] ?? 0) + delta) % 256;
      return typeof parseRecordLine(bytes) === 'string';
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('property: parseStrictJson throws nothing but GatehouseError, and refuses every duplicated key', (t) => {
  fc.assert(fc.property(hostileText(['{"a":1,"b":[{"c":"d"}]}', '{"highestVersion":3}']), throwsOnlyGatehouseErrors((text) => parseStrictJson(text, 'STATE_INVALID', 'x'))), {
    numRuns: 5000,
  });
  fc.assert(fc.property(fc.json(), throwsOnlyGatehouseErrors((text) => parseStrictJson(text, 'STATE_INVALID', 'x'))), { numRuns: 2000 });
  // Also when the second spelling of the key escapes every character: the parsed keys are equal.
  const escaped = (key: string): string => `"${[...key].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`;
  fc.assert(
    fc.property(fc.string({ maxLength: 8 }), fc.json(), fc.json(), fc.boolean(), (key, first, second, escape) =>
      refused(`{${JSON.stringify(key)}:${first},${escape ? escaped(key) : JSON.stringify(key)}:${second}}`),
    ),
    { numRuns: 2000 },
  );
  t.pass();
});

/** True when parseStrictJson refuses `text` with a GatehouseError. */
function refused(text: string): boolean {
  try {
    parseStrictJson(text, 'STATE_INVALID', 'x');
    return false;
  } catch (error) {
    return error instanceof GatehouseError;
  }
}

test('property: a rollback state file holds a positive integer or is STATE_INVALID, whatever its bytes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-state-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'state.json');
  const state = new FileRollbackState(file);
  await fc.assert(
    fc.asyncProperty(fc.oneof(hostileText(['{"highestVersion":3}\n']), fc.json()), async (text) => {
      await writeFile(file, text);
      try {
        const version = await state.highestVersion();
        return Number.isSafeInteger(version) && (version ?? 0) >= 1;
      } catch (error) {
        return error instanceof GatehouseError && error.code === 'STATE_INVALID';
      }
    }),
    { numRuns: 500 },
  );
  t.pass();
});
