import test from 'ava';
import fc from 'fast-check';
import { GatehouseError } from '../../src/errors.js';
import { hasLoneSurrogate, parseStrictJson } from '../../src/verify/strict-json.js';

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));

test('an unpaired surrogate, escaped or not, in any string or key is refused; a pair is text', (t) => {
  for (const text of ['"\\ud800"', '"\\uDFFF"', '["a", "b\\udc00\\ud800"]', '{"\\ud83d": 1}', '"\ud800"']) {
    t.throws(() => parseStrictJson(text, 'STATE_INVALID', 'x'), { code: 'STATE_INVALID', message: /unpaired surrogate/ }, text);
  }
  t.is(parseStrictJson('"\\ud83d\\ude00"', 'STATE_INVALID', 'x'), '\u{1f600}');
});

test('with integersOnly, a number with a fraction or exponent is refused, naming where it is', (t) => {
  const options = { integersOnly: true };
  t.deepEqual(parseStrictJson('{"a": [0, -7, 12]}', 'STATE_INVALID', 'x', options), { a: [0, -7, 12] });
  t.throws(() => parseStrictJson('{"a": [0, 1.0]}', 'STATE_INVALID', 'x', options), { message: 'x: a[1] is 1.0, not an integer token (write it without a fraction or exponent)' });
  t.throws(() => parseStrictJson('{"a": {"b": 1e3}}', 'STATE_INVALID', 'x', options), { message: /x: a\.b is 1e3, not an integer token/ });
  t.throws(() => parseStrictJson('-0', 'STATE_INVALID', 'x', options), { message: /the top-level value is -0/ });
  t.throws(() => parseStrictJson('{"a b": {"\u202e\\n": [2.5]}}', 'STATE_INVALID', 'x', options), { message: /^x: \["a b"\]\["\\u202e\\n"\]\[0\] is 2\.5/ });
  t.is(parseStrictJson('1.5', 'STATE_INVALID', 'x'), 1.5, 'without the option numbers are JSON numbers');
});

test('property: any JSON value with an unpaired surrogate somewhere in a string is refused', (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.string(), loneSurrogate, fc.nat(), (value, s, lone, at) => {
      const cut = at % (s.length + 1);
      const text = JSON.stringify([value, s.slice(0, cut) + lone + s.slice(cut)]);
      t.throws(() => parseStrictJson(text, 'STATE_INVALID', 'x'), { message: /unpaired surrogate/ });
    }),
  );
});

/** The number tokens and the strings (keys included) that JSON.stringify writes for `value`. */
function tokens(value: unknown, numbers: string[] = [], strings: string[] = []): { numbers: string[]; strings: string[] } {
  if (typeof value === 'number') numbers.push(JSON.stringify(value));
  else if (typeof value === 'string') strings.push(value);
  else if (Array.isArray(value)) for (const item of value) tokens(item, numbers, strings);
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      strings.push(key);
      tokens(item, numbers, strings);
    }
  }
  return { numbers, strings };
}

test('property: with integersOnly, JSON.stringify of any value parses exactly when its numbers are integers and its strings text', (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      const text = JSON.stringify(value);
      const { numbers, strings } = tokens(JSON.parse(text));
      const acceptable = numbers.every((n) => /^(0|-?[1-9]\d*)$/.test(n)) && !strings.some(hasLoneSurrogate);
      let parsed: unknown;
      try {
        parsed = parseStrictJson(text, 'STATE_INVALID', 'x', { integersOnly: true });
      } catch (error) {
        t.true(error instanceof GatehouseError);
        t.false(acceptable, text);
        return;
      }
      t.true(acceptable, text);
      t.deepEqual(parsed, JSON.parse(text));
    }),
  );
});
