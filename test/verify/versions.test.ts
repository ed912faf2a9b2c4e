// Several versions of one plugin in a manifest; hosts ask for a range or a pin and get the highest match.
import test from 'ava';
import fc from 'fast-check';
import type { GatehouseError } from '../../src/errors.js';
import { formatManifest, MANIFEST_SCHEMA, parseManifest, type Manifest, type ManifestPlugin } from '../../src/verify/manifest.js';
import { parsePluginRequest, selectPlugin } from '../../src/verify/versions.js';

const entry = (name: string, version?: string): ManifestPlugin => ({
  name,
  path: `${name}-${version ?? 'x'}`,
  sha256: 'a'.repeat(64),
  size: 1,
  ...(version === undefined ? {} : { version }),
});
const manifestOf = (...plugins: ManifestPlugin[]): Manifest => parseManifest(formatManifest({ schema: MANIFEST_SCHEMA, version: 3, expires: '2099-01-01T00:00:00Z', plugins }));
const KV = manifestOf(entry('kv', '1.0.0'), entry('kv', '1.2.5'), entry('kv', '1.10.0'), entry('kv', '2.0.0'), entry('kv', '3.0.0-rc.1'), entry('other'));

test('a range picks the highest listed match; a pin picks exactly that version; nothing asked picks the highest', (t) => {
  t.like(selectPlugin(KV, 'kv', '^1.2'), { entry: { version: '1.10.0' }, requested: '^1.2', reason: 'range' });
  t.like(selectPlugin(KV, 'kv', '~1.2'), { entry: { version: '1.2.5' }, reason: 'range' });
  t.like(selectPlugin(KV, 'kv', '1.0.0'), { entry: { version: '1.0.0' }, reason: 'pin' });
  t.like(selectPlugin(KV, 'kv', '3.0.0-rc.1'), { entry: { version: '3.0.0-rc.1' }, reason: 'pin' });
  t.like(selectPlugin(KV, 'kv', '>=2'), { entry: { version: '2.0.0' } }, 'a pre-release is chosen only when the range names it');
  t.like(selectPlugin(KV, 'kv'), { entry: { version: '3.0.0-rc.1' }, reason: 'highest' });
  t.like(selectPlugin(KV, 'other'), { entry: { name: 'other' }, reason: 'only' });
});

test('a pin or range matching nothing is PLUGIN_VERSION_NOT_FOUND naming the versions available', (t) => {
  const error = t.throws(() => selectPlugin(KV, 'kv', '1.2.4'), { code: 'PLUGIN_VERSION_NOT_FOUND' });
  t.regex(error?.message ?? '', /kv@1\.2\.4.*available: 3\.0\.0-rc\.1, 2\.0\.0, 1\.10\.0, 1\.2\.5, 1\.0\.0/);
  t.deepEqual((error as GatehouseError | undefined)?.details.availableVersions, ['1.0.0', '1.2.5', '1.10.0', '2.0.0', '3.0.0-rc.1']);
  t.throws(() => selectPlugin(KV, 'kv', '^4'), { code: 'PLUGIN_VERSION_NOT_FOUND' });
  t.throws(() => selectPlugin(KV, 'other', '^1'), { code: 'PLUGIN_VERSION_NOT_FOUND', message: /no versioned entries/ });
  t.throws(() => selectPlugin(KV, 'missing', '^1'), { code: 'PLUGIN_NOT_IN_MANIFEST' });
  t.throws(() => selectPlugin(KV, 'kv', 'not a range!'), { code: 'INVALID_OPTIONS' });
});

test('the manifest allows one name several times only with distinct canonical versions', (t) => {
  t.throws(() => manifestOf(entry('kv', '1.0.0'), entry('kv', '1.0.0')), { code: 'MANIFEST_INVALID', message: /kv@1\.0\.0/ });
  t.throws(() => manifestOf(entry('kv'), entry('kv')), { code: 'MANIFEST_INVALID' });
  t.throws(() => manifestOf(entry('kv', '1.0.0'), entry('kv')), { code: 'MANIFEST_INVALID', message: /distinct version/ });
  t.throws(() => manifestOf(entry('kv'), entry('kv', '1.0.0')), { code: 'MANIFEST_INVALID', message: /distinct version/ });
  for (const bad of ['v1.0.0', '1.0', '01.0.0', '1.0.0+build', ' 1.0.0', 1, '']) {
    t.throws(() => manifestOf({ ...entry('kv'), version: bad as string }), { code: 'MANIFEST_INVALID', message: /version/ }, String(bad));
  }
});

test('NAME@RANGE splits at the last @ only when a range follows, so scoped names stay whole', (t) => {
  t.deepEqual(parsePluginRequest('kv@^1'), { name: 'kv', version: '^1' });
  t.deepEqual(parsePluginRequest('kv@1.2.3'), { name: 'kv', version: '1.2.3' });
  t.deepEqual(parsePluginRequest('@acme/kv'), { name: '@acme/kv' });
  t.deepEqual(parsePluginRequest('@acme/kv@~2.1'), { name: '@acme/kv', version: '~2.1' });
  t.deepEqual(parsePluginRequest('kv'), { name: 'kv' });
  t.deepEqual(parsePluginRequest('kv@'), { name: 'kv@' });
});

test('property: selection never throws anything but a GatehouseError and never returns a version outside the request', (t) => {
  const version = fc.tuple(fc.nat(5), fc.nat(5), fc.nat(5)).map(([a, b, c]) => `${a}.${b}.${c}`);
  fc.assert(
    fc.property(fc.uniqueArray(version, { minLength: 1, maxLength: 8 }), fc.oneof(version, fc.string({ maxLength: 12 }), version.map((v) => `^${v}`)), (versions, requested) => {
      const manifest = manifestOf(...versions.map((v) => entry('p', v)));
      try {
        const { entry: chosen } = selectPlugin(manifest, 'p', requested);
        t.true(versions.includes(chosen.version ?? ''));
      } catch (error) {
        t.regex((error as { code?: string }).code ?? '', /^(PLUGIN_VERSION_NOT_FOUND|INVALID_OPTIONS)$/);
      }
    }),
  );
});
