import test from 'ava';
import fc from 'fast-check';
import { LOG_LEVELS, MAX_HCLOG_FIELDS } from '../../src/transport/hclog.js';
import { parsePluginLogLine } from '../../src/transport/plugin-log-line.js';

test("pino's six numeric levels map onto the host's five, fatal as error", (t) => {
  const levels = [10, 20, 30, 40, 50, 60].map((level) => parsePluginLogLine(JSON.stringify({ level, msg: 'm' }))?.level);
  t.deepEqual(levels, ['trace', 'debug', 'info', 'warn', 'error', 'error']);
});

test('msg, name and epoch-ms time become message, module and timestamp; pid, hostname and v are dropped', (t) => {
  const line = JSON.stringify({ level: 30, time: Date.UTC(2026, 0, 2, 3, 4, 5, 6), pid: 9, hostname: 'h', v: 1, name: 'kv', msg: 'put', key: 'k' });
  t.deepEqual(parsePluginLogLine(line), { level: 'info', message: 'put', module: 'kv', timestamp: '2026-01-02T03:04:05.006Z', fields: { key: 'k' } });
});

test('a custom or non-numeric level, or a msg that is not a string, is not a record (logged as plain text)', (t) => {
  for (const record of [{ level: 35, msg: 'm' }, { level: '30', msg: 'm' }, { level: 30, msg: 7 }, { level: 70, msg: 'm' }]) {
    t.is(parsePluginLogLine(JSON.stringify(record)), undefined, JSON.stringify(record));
  }
});

test('a time pino would not write is left out rather than guessed at', (t) => {
  for (const time of [-1, 1.5, 1e300, '2026-01-01']) {
    t.is(parsePluginLogLine(JSON.stringify({ level: 30, time, msg: 'm' }))?.timestamp, undefined, String(time));
  }
});

test('hclog lines still read as hclog', (t) => {
  t.like(parsePluginLogLine('{"@level":"warn","@message":"w","level":30}'), { level: 'warn', message: 'w' });
});

test('property: any JSON object line gives undefined or a record with one of five levels and bounded fields', (t) => {
  let records = 0;
  fc.assert(
    fc.property(
      fc.dictionary(fc.oneof(fc.constantFrom('level', 'msg', 'time', 'name', '@level', '@message', '__proto__'), fc.string()), fc.jsonValue(), { maxKeys: 80 }),
      fc.option(fc.constantFrom(10, 20, 30, 35, 40, 50, 60), { nil: undefined }),
      (object, level) => {
        const record = parsePluginLogLine(JSON.stringify(level === undefined ? object : { ...object, level }));
        if (record === undefined) return;
        records += 1;
        t.true(LOG_LEVELS.includes(record.level));
        t.is(typeof record.message, 'string');
        t.true(Object.keys(record.fields).length <= MAX_HCLOG_FIELDS);
        t.is(Object.getPrototypeOf(record.fields), Object.prototype);
      },
    ),
    { numRuns: 1000 },
  );
  t.true(records > 0, 'the generator never produced a record');
});
