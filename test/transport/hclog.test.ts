import test from 'ava';
import fc from 'fast-check';
import { GatehouseError } from '../../src/errors.js';
import {
  formatHclogLine,
  LOG_LEVELS,
  MAX_HCLOG_FIELDS,
  parseHclogLine,
  type LogLevel,
} from '../../src/transport/hclog.js';

// A line as go-hclog 0.x writes it with JSONFormat and IncludeLocation.
const GO_LINE =
  '{"@caller":"/src/kv/main.go:42","@level":"info","@message":"plugin started","@module":"kv",' +
  '"@timestamp":"2024-05-06T07:08:09.123456+02:00","path":"/tmp/plugin","pid":4242}';

test('a go-hclog JSON line is parsed into level, message, module, timestamp and fields', (t) => {
  t.deepEqual(parseHclogLine(GO_LINE), {
    level: 'info',
    message: 'plugin started',
    module: 'kv',
    timestamp: '2024-05-06T07:08:09.123456+02:00',
    fields: { path: '/tmp/plugin', pid: 4242 },
  });
});

test('each of hclog\'s five level names maps to itself, in any case and with surrounding spaces', (t) => {
  for (const level of LOG_LEVELS) {
    t.is(parseHclogLine(JSON.stringify({ '@level': level, '@message': 'm' }))?.level, level);
    t.is(parseHclogLine(JSON.stringify({ '@level': ` ${level.toUpperCase()} `, '@message': 'm' }))?.level, level);
  }
});

test('an unknown level is not hclog, so a plugin cannot invent "fatal" or other severities', (t) => {
  for (const level of ['fatal', 'warning', 'emergency', 'all', '', 'info\u0000']) {
    t.is(parseHclogLine(JSON.stringify({ '@level': level, '@message': 'm' })), undefined, level);
  }
});

test('a line without a string @level or @message is not hclog', (t) => {
  t.is(parseHclogLine('{"@message":"m"}'), undefined);
  t.is(parseHclogLine('{"@level":"info"}'), undefined);
  t.is(parseHclogLine('{"@level":"info","@message":42}'), undefined);
  t.is(parseHclogLine('{"@level":["info"],"@message":"m"}'), undefined);
});

test('a non-string @module is not hclog', (t) => {
  t.is(parseHclogLine('{"@level":"info","@message":"m","@module":7}'), undefined);
  t.is(parseHclogLine('{"@level":"info","@message":"m","@module":null}'), undefined);
});

test('an empty @module means no module', (t) => {
  t.false('module' in (parseHclogLine('{"@level":"info","@message":"m","@module":""}') ?? { module: 'x' }));
});

test('a malformed or non-string @timestamp is not hclog, as in go-plugin', (t) => {
  t.is(parseHclogLine('{"@level":"info","@message":"m","@timestamp":"yesterday"}'), undefined);
  t.is(parseHclogLine('{"@level":"info","@message":"m","@timestamp":1700000000}'), undefined);
  t.is(parseHclogLine('{"@level":"info","@message":"m","@timestamp":"2024-05-06 07:08:09Z"}'), undefined);
});

test('text, JSON that is not an object, and broken JSON are not hclog', (t) => {
  for (const line of ['plugin started', '[INFO] plugin started', '', '[1,2]', '"text"', 'null', '{"@level":', '{}']) {
    t.is(parseHclogLine(line), undefined, line);
  }
});

test('"@" keys other than the four are dropped from fields', (t) => {
  const record = parseHclogLine('{"@level":"warn","@message":"m","@caller":"x.go:1","@pid":1,"key":"v"}');
  t.deepEqual(record?.fields, { key: 'v' });
});

test(`at most ${MAX_HCLOG_FIELDS} fields are kept`, (t) => {
  const entries = Array.from({ length: 200 }, (_, i) => [`k${i}`, i] as const);
  const line = JSON.stringify({ '@level': 'debug', '@message': 'm', ...Object.fromEntries(entries) });
  const fields = parseHclogLine(line)?.fields ?? {};
  t.is(Object.keys(fields).length, MAX_HCLOG_FIELDS);
  t.is(fields.k0, 0);
});

test('a "__proto__" key stays a plain field and does not change the prototype', (t) => {
  const fields = parseHclogLine('{"@level":"info","@message":"m","__proto__":{"polluted":true}}')?.fields;
  t.truthy(fields);
  t.true(Object.hasOwn(fields ?? {}, '__proto__'));
  t.is(Object.getPrototypeOf(fields), Object.prototype);
  t.is((fields as { polluted?: unknown }).polluted, undefined);
});

const NOW = new Date('2024-05-06T07:08:09.123Z');

test('format puts @level, @message, @module and @timestamp first, then the fields', (t) => {
  const line = formatHclogLine('info', 'listening', { port: 1234, ok: true }, 'kv', NOW);
  t.is(
    line,
    '{"@level":"info","@message":"listening","@module":"kv","@timestamp":"2024-05-06T07:08:09.123000Z","port":1234,"ok":true}',
  );
});

test('format writes the timestamp with six fractional digits, like Go\'s hclog', (t) => {
  const record = JSON.parse(formatHclogLine('debug', 'm', {}, undefined, NOW)) as Record<string, unknown>;
  t.regex(String(record['@timestamp']), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
});

test('format leaves @module out when there is no module', (t) => {
  t.false(formatHclogLine('info', 'm', {}, undefined, NOW).includes('@module'));
  t.false(formatHclogLine('info', 'm', {}, '', NOW).includes('@module'));
});

test('format keeps a message with line breaks on one line, so it cannot forge a second record', (t) => {
  const forged = 'ok\n{"@level":"error","@message":"forged"}';
  const line = formatHclogLine('info', forged, {}, undefined, NOW);
  t.false(/[\r\n]/.test(line));
  t.is(parseHclogLine(line)?.message, forged);
});

test('format ignores field keys starting with "@", so fields cannot override the level', (t) => {
  const line = formatHclogLine('info', 'm', { '@level': 'error', '@caller': 'x', plain: 1 }, undefined, NOW);
  t.deepEqual(parseHclogLine(line), {
    level: 'info',
    message: 'm',
    timestamp: '2024-05-06T07:08:09.123000Z',
    fields: { plain: 1 },
  });
});

test('format never throws on awkward field values', (t) => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const line = formatHclogLine('error', 'm', { big: 10n, circular, fn: () => 1, missing: undefined }, undefined, NOW);
  const record = parseHclogLine(line);
  t.is(record?.fields.big, '10');
  t.is(typeof record?.fields.circular, 'string');
  t.false('fn' in (record?.fields ?? {}));
  t.false('missing' in (record?.fields ?? {}));
});

test('format writes an Error field as its text, as go-hclog writes an error value, nested ones too', (t) => {
  const error = new GatehouseError('CALL_FAILED', 'disk full');
  const line = formatHclogLine('error', 'm', { err: error, nested: { cause: new TypeError('bad input') } }, undefined, NOW);
  const record = parseHclogLine(line);
  t.is(record?.fields.err, 'GatehouseError: disk full');
  t.deepEqual(record?.fields.nested, { cause: 'TypeError: bad input' });
});

test('format refuses a level outside the five and an invalid date with INVALID_OPTIONS', (t) => {
  const bad = t.throws(() => formatHclogLine('fatal' as LogLevel, 'm'), { instanceOf: GatehouseError });
  t.is(bad?.code, 'INVALID_OPTIONS');
  const date = t.throws(() => formatHclogLine('info', 'm', {}, undefined, new Date(Number.NaN)), {
    instanceOf: GatehouseError,
  });
  t.is(date?.code, 'INVALID_OPTIONS');
});

const level = fc.constantFrom(...LOG_LEVELS);
const fieldKey = fc.string({ maxLength: 12 }).filter((key) => !key.startsWith('@'));

test('property: format then parse gives back the record', (t) => {
  fc.assert(
    fc.property(
      level,
      fc.string({ unit: 'binary' }),
      fc.dictionary(fieldKey, fc.jsonValue(), { maxKeys: MAX_HCLOG_FIELDS }),
      fc.option(fc.string({ unit: 'binary', minLength: 1 }), { nil: undefined }),
      fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }),
      (lvl, message, fields, module, now) => {
        const record = parseHclogLine(formatHclogLine(lvl, message, fields, module, now));
        const expected = {
          level: lvl,
          message,
          ...(module === undefined ? {} : { module }),
          timestamp: now.toISOString().replace('Z', '000Z'),
          fields: JSON.parse(JSON.stringify(fields)) as Record<string, unknown>,
        };
        t.deepEqual(record, expected);
      },
    ),
  );
});

test('property: parse never throws on arbitrary text and only ever reports the five levels', (t) => {
  const awkward = fc.oneof(fc.constantFrom('info', ' Warn ', 'fatal', 'warning', '2024-01-01T00:00:00Z'), fc.jsonValue());
  const nearlyHclog = fc
    .tuple(
      fc.record(
        { '@level': fc.oneof(level, awkward), '@message': fc.oneof(fc.string(), awkward), '@module': awkward, '@timestamp': awkward },
        { requiredKeys: [] },
      ),
      fc.dictionary(fc.oneof(fc.constantFrom('__proto__', '@caller', 'constructor'), fc.string()), fc.jsonValue()),
    )
    .map(([known, extra]) => JSON.stringify({ ...extra, ...known }));
  const line = fc.oneof(fc.string({ unit: 'binary' }), fc.json(), nearlyHclog, nearlyHclog);
  let records = 0;
  fc.assert(
    fc.property(line, (text) => {
      const record = parseHclogLine(text);
      if (record === undefined) return;
      records += 1;
      t.true(LOG_LEVELS.includes(record.level));
      t.is(typeof record.message, 'string');
      t.true(Object.keys(record.fields).length <= MAX_HCLOG_FIELDS);
      t.false(Object.keys(record.fields).some((key) => key.startsWith('@')));
    }),
    { numRuns: 500 },
  );
  t.true(records > 0, 'the generator never produced an hclog record');
});

test('parse of a deeply nested 1 MiB line neither throws nor hangs', (t) => {
  const depth = 512 * 1024;
  const line = `{"@level":"info","@message":"m","deep":${'['.repeat(depth)}${']'.repeat(depth)}}`;
  const start = process.hrtime.bigint();
  const record = parseHclogLine(line);
  t.true(record === undefined || record.level === 'info');
  // Generous for a loaded machine: the failure this catches is a parse that hangs, not a slow one.
  t.true(Number(process.hrtime.bigint() - start) / 1e6 < 20_000);
});
