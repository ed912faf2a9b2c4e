import test from 'ava';
import fc from 'fast-check';
import { formatManifest, MAX_MANIFEST_BYTES, parseManifest, type Manifest } from '../../src/verify/manifest.js';
import { hostileText, throwsOnlyGatehouseErrors } from './fuzz.js';

const HASH_A = 'a'.repeat(64);
const HASH_B = '0123456789abcdef'.repeat(4);

const example: Manifest = {
  schema: 'gatehouse.manifest/v1',
  version: 3,
  expires: '2030-01-31T00:00:00Z',
  plugins: [
    { name: 'kv', path: 'kv-plugin', sha256: HASH_A, size: 1234, args: ['--serve'], protocolVersions: [1, 2] },
    {
      name: 'kv-node',
      path: 'node/kv.mjs',
      sha256: HASH_B,
      size: 99,
      interpreter: { path: '/usr/bin/node' },
      files: [{ path: 'node/lib/store.mjs', sha256: HASH_A, size: 10 }],
    },
  ],
};
const exampleText = formatManifest(example);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the tests reach anywhere into the JSON to break it.
type AnyJson = any;

/** The example as plain JSON data with `edit` applied, as text. */
function edited(edit: (m: AnyJson) => void): string {
  const copy = JSON.parse(exampleText) as AnyJson;
  edit(copy);
  return JSON.stringify(copy);
}

test('a manifest is written as canonical two-space JSON and reads back to the same value', (t) => {
  t.deepEqual(parseManifest(exampleText), example);
  t.is(formatManifest(parseManifest(exampleText)), exampleText);
  t.true(exampleText.endsWith('}\n'));
  t.deepEqual(parseManifest(Buffer.from(exampleText)), example);
});

test('the written fields come in a fixed order whatever order they were given in', (t) => {
  const shuffled = { plugins: example.plugins, expires: example.expires, version: example.version, schema: example.schema };
  t.is(formatManifest(shuffled as Manifest), exampleText);
});

test('a manifest with no plugins is valid: it is how every plugin is withdrawn', (t) => {
  t.deepEqual(parseManifest(edited((m) => (m.plugins = []))).plugins, []);
});

test('an interpreter inside the plugin directory is allowed when pinned by digest, and so is a pinned system one', (t) => {
  const pinned = parseManifest(
    edited((m) => {
      m.plugins[1].interpreter = { path: 'bin/node', sha256: HASH_A, size: 5 };
      m.plugins[0].interpreter = { path: '/usr/bin/node', sha256: HASH_B, size: 6 };
    }),
  );
  t.deepEqual(pinned.plugins[1]?.interpreter, { path: 'bin/node', sha256: HASH_A, size: 5 });
  t.deepEqual(pinned.plugins[0]?.interpreter, { path: '/usr/bin/node', sha256: HASH_B, size: 6 });
});

const refusals: Array<[string, string, RegExp]> = [
  ['another schema', edited((m) => (m.schema = 'gatehouse.manifest/v2')), /schema must be "gatehouse.manifest\/v1"/],
  ['an unknown top-level field', edited((m) => (m.signature = 'x')), /signature unknown field/],
  ['an unknown plugin field', edited((m) => (m.plugins[0].env = {})), /plugins\[0\]\.env unknown field/],
  ['an unknown field in a file entry', edited((m) => (m.plugins[1].files[0].mode = 493)), /plugins\[1\]\.files\[0\]\.mode unknown field/],
  ['an unknown interpreter field', edited((m) => (m.plugins[1].interpreter.args = [])), /plugins\[1\]\.interpreter\.args unknown field/],
  ['a __proto__ field', exampleText.replace('"version"', '"__proto__": {}, "version"'), /__proto__ unknown field/],
  ['a missing field', edited((m) => delete m.plugins[0].size), /plugins\[0\]\.size missing/],
  ['a duplicate plugin name', edited((m) => (m.plugins[1].name = 'kv')), /plugins\[1\]\.name "kv" is already the name of plugins\[0\]/],
  ['an absolute path', edited((m) => (m.plugins[0].path = '/usr/bin/kv')), /plugins\[0\]\.path must be relative/],
  ['a path with ..', edited((m) => (m.plugins[0].path = 'a/../../etc/passwd')), /plugins\[0\]\.path must not contain "\.\."/],
  ['a path that is ..', edited((m) => (m.plugins[1].files[0].path = '..')), /plugins\[1\]\.files\[0\]\.path must not contain/],
  ['a path with a . segment', edited((m) => (m.plugins[0].path = './kv')), /plugins\[0\]\.path must be normalised/],
  ['a path with an empty segment', edited((m) => (m.plugins[0].path = 'a//kv')), /plugins\[0\]\.path must be normalised/],
  ['a path ending in /', edited((m) => (m.plugins[0].path = 'kv/')), /plugins\[0\]\.path must be normalised/],
  ['a path with a backslash', edited((m) => (m.plugins[0].path = 'a\\..\\kv')), /plugins\[0\]\.path contains U\+005C: no control, invisible or bidi characters/],
  ['a path with a newline', edited((m) => (m.plugins[0].path = 'kv\nok')), /plugins\[0\]\.path contains U\+000A/],
  ['a path longer than 1024 bytes', edited((m) => (m.plugins[0].path = 'é'.repeat(513))), /plugins\[0\]\.path longer than 1024 bytes/],
  ['an interpreter path with ..', edited((m) => (m.plugins[1].interpreter.path = '/usr/../tmp/node')), /plugins\[1\]\.interpreter\.path must not contain/],
  ['upper-case hex', edited((m) => (m.plugins[0].sha256 = HASH_A.toUpperCase())), /plugins\[0\]\.sha256 must be 64 lower-case hex digits/],
  ['a digest one digit short', edited((m) => (m.plugins[0].sha256 = HASH_A.slice(1))), /plugins\[0\]\.sha256 must be 64/],
  ['a digest one digit long', edited((m) => (m.plugins[0].sha256 = `${HASH_A}0`)), /plugins\[0\]\.sha256 must be 64/],
  ['a digest that is not hex', edited((m) => (m.plugins[0].sha256 = 'g'.repeat(64))), /plugins\[0\]\.sha256 must be 64/],
  ['a negative size', edited((m) => (m.plugins[0].size = -1)), /plugins\[0\]\.size must be a whole number/],
  ['a fractional size', edited((m) => (m.plugins[0].size = 1.5)), /plugins\[0\]\.size is 1\.5, not an integer token/],
  ['a size given as a string', edited((m) => (m.plugins[0].size = '1234')), /plugins\[0\]\.size must be a whole number/],
  ['version 0', edited((m) => (m.version = 0)), /version must be an integer from 1/],
  ['a fractional version', edited((m) => (m.version = 2.5)), /version is 2\.5, not an integer token/],
  ['a version beyond 2^53', exampleText.replace('"version": 3', '"version": 9007199254740993'), /version must be an integer/],
  ['an expiry without a zone', edited((m) => (m.expires = '2030-01-31T00:00:00')), /expires must be an ISO 8601 UTC time/],
  ['an expiry with an offset', edited((m) => (m.expires = '2030-01-31T00:00:00+02:00')), /expires must be an ISO 8601 UTC time/],
  ['an expiry on 30 February', edited((m) => (m.expires = '2030-02-30T00:00:00Z')), /expires is not a real time/],
  ['a name with a control character', edited((m) => (m.plugins[0].name = 'kv\u001b[31m')), /plugins\[0\]\.name must be 1 to 128 printable/],
  ['an empty name', edited((m) => (m.plugins[0].name = '')), /plugins\[0\]\.name must be/],
  ['an argument with a NUL', edited((m) => (m.plugins[0].args = ['a\u0000b'])), /plugins\[0\]\.args\[0\] contains a NUL/],
  ['an empty protocol version list', edited((m) => (m.plugins[0].protocolVersions = [])), /plugins\[0\]\.protocolVersions must not be empty/],
  ['a repeated protocol version', edited((m) => (m.plugins[0].protocolVersions = [1, 1])), /plugins\[0\]\.protocolVersions lists a version twice/],
  ['protocol version 0', edited((m) => (m.plugins[0].protocolVersions = [0])), /plugins\[0\]\.protocolVersions\[0\] must be an integer/],
  ['an unpinned interpreter inside the plugin directory', edited((m) => (m.plugins[1].interpreter = { path: 'bin/node' })), /interpreter\.sha256 is required/],
  ['an interpreter pinned by digest but not size', edited((m) => (m.plugins[1].interpreter.sha256 = HASH_A)), /interpreter\.size must be a whole number/],
  ['a file listed twice', edited((m) => m.plugins[1].files.push(m.plugins[1].files[0])), /plugins\[1\]\.files\[1\]\.path "node\/lib\/store\.mjs" is listed twice/],
  ['a file that is the plugin itself', edited((m) => (m.plugins[1].files[0].path = 'node/kv.mjs')), /plugins\[1\]\.files\[0\]\.path "node\/kv\.mjs" is listed twice/],
  ['plugins given as an object', edited((m) => (m.plugins = {})), /plugins must be an array/],
  ['a duplicate top-level key', exampleText.replace('"version": 3,', '"version": 3,\n  "version": 9,'), /key "version" appears twice/],
  ['a duplicate key in a plugin', exampleText.replace('"size": 1234,', '"size": 1234, "sha256": "x",'), /key "sha256" appears twice/],
  ['a byte-order mark', `\ufeff${exampleText}`, /not JSON/],
  ['trailing garbage', `${exampleText}x`, /not JSON/],
  ['a version written 3.0', exampleText.replace('"version": 3', '"version": 3.0'), /version is 3\.0, not an integer token/],
  ['a version written 3e0', exampleText.replace('"version": 3', '"version": 3e0'), /version is 3e0, not an integer token/],
  ['a version written 9007199254740991.4', exampleText.replace('"version": 3', '"version": 9007199254740991.4'), /version is 9007199254740991\.4, not an integer/],
  ['a size written 1234.0', exampleText.replace('"size": 1234', '"size": 1234.0'), /plugins\[0\]\.size is 1234\.0, not an integer token/],
  ['a size written -0', exampleText.replace('"size": 1234', '"size": -0'), /plugins\[0\]\.size is -0, not an integer token/],
  ['a protocol version written 1E0', exampleText.replace('1,\n', '1E0,\n'), /plugins\[0\]\.protocolVersions\[0\] is 1E0, not an integer/],
  ['a lone high surrogate escape in a path', exampleText.replace('"kv-plugin"', '"kv-plugin\\ud800"'), /plugins\[0\]\.path contains an unpaired surrogate/],
  ['a lone low surrogate escape in a path', exampleText.replace('"kv-plugin"', '"kv-plugin\\uDC00"'), /plugins\[0\]\.path contains an unpaired surrogate/],
  ['reversed surrogates in a path', exampleText.replace('"kv-plugin"', '"kv-plugin\\udc00\\ud800"'), /plugins\[0\]\.path contains an unpaired surrogate/],
  ['a lone surrogate escape in an argument', exampleText.replace('"--serve"', '"--serve\\udbff"'), /plugins\[0\]\.args\[0\] contains an unpaired surrogate/],
  ['a lone surrogate escape in a key', exampleText.replace('"version"', '"\\ud800": 1, "version"'), /"\\ud800" contains an unpaired surrogate/],
  ['a right-to-left override in a path', edited((m) => (m.plugins[0].path = 'kv\u202egnp.exe')), /plugins\[0\]\.path contains U\+202E/],
  ['a bidi isolate in a file path', edited((m) => (m.plugins[1].files[0].path = 'node/\u2066lib/store.mjs')), /plugins\[1\]\.files\[0\]\.path contains U\+2066/],
  ['a zero-width space in a path', edited((m) => (m.plugins[0].path = 'kv\u200b-plugin')), /plugins\[0\]\.path contains U\+200B/],
  ['a zero-width no-break space in a path', edited((m) => (m.plugins[0].path = '\ufeffkv-plugin')), /plugins\[0\]\.path contains U\+FEFF/],
  ['a word joiner in an interpreter path', edited((m) => (m.plugins[1].interpreter.path = '/usr/bin/no\u2060de')), /plugins\[1\]\.interpreter\.path contains U\+2060/],
  ['a C1 control in a path', edited((m) => (m.plugins[0].path = 'kv\u009b31m')), /plugins\[0\]\.path contains U\+009B/],
  ['a right-to-left override in a name', edited((m) => (m.plugins[0].name = 'kv\u202e')), /plugins\[0\]\.name must be 1 to 128 printable ASCII/],
];
for (const [what, text, message] of refusals) {
  test(`a manifest with ${what} is MANIFEST_INVALID, naming the field`, (t) => {
    t.throws(() => parseManifest(text), { code: 'MANIFEST_INVALID', message });
  });
}

test('a duplicate key is caught however its name is escaped', (t) => {
  t.throws(() => parseManifest(exampleText.replace('"version": 3,', '"version": 3,\n  "\\u0076ersion": 9,')), { code: 'MANIFEST_INVALID', message: /appears twice/ });
});

test('bytes that are not UTF-8 are MANIFEST_INVALID', (t) => {
  const bytes = Buffer.from(exampleText.replace('kv-plugin', 'kv-plugin\u00e9'));
  bytes[bytes.indexOf(0xc3)] = 0xff;
  t.throws(() => parseManifest(bytes), { code: 'MANIFEST_INVALID', message: /not UTF-8/ });
});

test('a manifest over 1 MiB is MANIFEST_TOO_LARGE before it is parsed', (t) => {
  const padded = exampleText.replace('{', `{${' '.repeat(MAX_MANIFEST_BYTES)}`);
  t.throws(() => parseManifest(padded), { code: 'MANIFEST_TOO_LARGE' });
  t.throws(() => parseManifest(Buffer.from(padded)), { code: 'MANIFEST_TOO_LARGE' });
});

test('formatManifest refuses to write what parseManifest would refuse', (t) => {
  t.throws(() => formatManifest({ ...example, version: -1 }), { code: 'MANIFEST_INVALID' });
  const [first] = example.plugins;
  t.throws(() => formatManifest({ ...example, plugins: [{ ...first!, args: ['a\ud800'] }] }), { code: 'MANIFEST_INVALID', message: /args\[0\] contains an unpaired surrogate/ });
  t.throws(() => formatManifest({ ...example, plugins: [{ ...first!, path: 'kv\ud800' }] }), { code: 'MANIFEST_INVALID', message: /path contains an unpaired surrogate/ });
});

test('a lone surrogate in a manifest given as a string (not escaped) is refused too', (t) => {
  t.throws(() => parseManifest(exampleText.replace('kv-plugin', 'kv-plugin\udfff')), { code: 'MANIFEST_INVALID', message: /plugins\[0\]\.path contains an unpaired surrogate/ });
});

const segment = fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,8}$/);
const relativePath = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('/'));
const file = fc.record({ path: relativePath, sha256: fc.stringMatching(/^[0-9a-f]{64}$/), size: fc.maxSafeNat() });
const plugin = fc
  .record(
    {
      name: fc.stringMatching(/^[\x21-\x7e]{1,20}$/),
      file,
      args: fc.array(fc.string({ unit: 'grapheme', maxLength: 10 }), { maxLength: 3 }),
      protocolVersions: fc.uniqueArray(fc.integer({ min: 1, max: 0x7fffffff }), { minLength: 1, maxLength: 3 }),
      interpreter: fc.oneof(
        relativePath.map((path) => ({ path: `/${path}` })),
        file.map((pinned) => ({ ...pinned, path: `/${pinned.path}` })),
      ),
      files: fc.uniqueArray(file, { selector: (f) => f.path, maxLength: 3 }),
    },
    { requiredKeys: ['name', 'file'] },
  )
  .filter((p) => !p.files?.some((f) => f.path === p.file.path))
  .map(({ file: main, ...rest }) => ({ ...rest, ...main }));
const manifest = fc.record({
  schema: fc.constant('gatehouse.manifest/v1' as const),
  version: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  expires: fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2200-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString()),
  plugins: fc.uniqueArray(plugin, { selector: (p) => p.name, maxLength: 4 }),
});

test('property: any valid manifest formats, parses back to itself, and formats the same again', (t) => {
  fc.assert(
    fc.property(manifest, (m) => {
      const text = formatManifest(m);
      t.deepEqual(parseManifest(text), m);
      return formatManifest(parseManifest(text)) === text;
    }),
  );
});

test('property: parseManifest throws nothing but GatehouseError on hostile text', (t) => {
  const seeds = [exampleText, JSON.stringify(example), ...fc.sample(manifest, 5).map((m) => formatManifest(m))];
  fc.assert(fc.property(hostileText(seeds), throwsOnlyGatehouseErrors(parseManifest)), { numRuns: 3000 });
  fc.assert(fc.property(fc.json(), throwsOnlyGatehouseErrors(parseManifest)), { numRuns: 1000 });
  t.pass();
});

/** Characters that draw nothing, reorder what follows, or are controls: a reviewer cannot see them. */
const misleading = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }),
  fc.integer({ min: 0x7f, max: 0x9f }),
  fc.constantFrom(0x061c, 0x200b, 0x200c, 0x200d, 0x200e, 0x200f, 0x2028, 0x2029, 0x2060, 0xfeff),
  fc.integer({ min: 0x202a, max: 0x202e }),
  fc.integer({ min: 0x2066, max: 0x2069 }),
).map((code) => String.fromCodePoint(code));

test('property: a misleading character anywhere in any path is MANIFEST_INVALID, naming the field', (t) => {
  const fieldPaths: Array<[string, (m: AnyJson, value: string) => void]> = [
    ['plugins[0].path', (m, v) => (m.plugins[0].path = v)],
    ['plugins[1].path', (m, v) => (m.plugins[1].path = v)],
    ['plugins[1].files[0].path', (m, v) => (m.plugins[1].files[0].path = v)],
    ['plugins[1].interpreter.path', (m, v) => (m.plugins[1].interpreter.path = `/${v}`)],
  ];
  fc.assert(
    fc.property(fc.constantFrom(...fieldPaths), relativePath, fc.nat(), misleading, ([where, set], path, at, character) => {
      const cut = at % (path.length + 1);
      const text = edited((m) => set(m, path.slice(0, cut) + character + path.slice(cut)));
      t.throws(() => parseManifest(text), { code: 'MANIFEST_INVALID', message: new RegExp(`manifest: ${where.replace(/[[\].]/g, '\\$&')} contains`) });
    }),
  );
});

test('property: any integer field written with a fraction or an exponent is MANIFEST_INVALID, naming the field', (t) => {
  /** Where each integer of `m` sits, as a function that puts a placeholder there. */
  const integerFields = (m: AnyJson): Array<(placeholder: string) => void> => [
    (v) => (m.version = v),
    ...m.plugins.flatMap((p: AnyJson) => [
      (v: string) => (p.size = v),
      ...(p.protocolVersions ?? []).map((_: number, i: number) => (v: string) => (p.protocolVersions[i] = v)),
      ...(p.files ?? []).map((f: AnyJson) => (v: string) => (f.size = v)),
      ...(p.interpreter?.size === undefined ? [] : [(v: string) => (p.interpreter.size = v)]),
    ]),
  ];
  fc.assert(
    fc.property(manifest, fc.nat(), fc.integer({ min: 1, max: 2 ** 31 }), fc.constantFrom('.0', 'e0', 'E+0', '.00', '0e-1'), (m, pick, n, suffix) => {
      const copy = JSON.parse(JSON.stringify(m)) as AnyJson;
      const fields = integerFields(copy);
      fields[pick % fields.length]!('PLACEHOLDER');
      const text = JSON.stringify(copy, null, 2).replace('"PLACEHOLDER"', `${n}${suffix}`);
      t.throws(() => parseManifest(text), { code: 'MANIFEST_INVALID', message: /is [0-9.eE+-]+, not an integer token/ });
    }),
  );
});
