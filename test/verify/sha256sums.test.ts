import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chown, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { createManifest } from '../../src/verify/manifest-create.js';
import { parseSha256Sums, manifestFromSha256Sums } from '../../src/verify/sha256sums.js';
import { runningAsRoot, tempDir, writeFileWithMode } from '../discover/temp-dir.js';
import { hostileText, throwsOnlyGatehouseErrors } from './fuzz.js';

const HASH = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const expires = new Date('2031-06-01T00:00:00Z');

test('both sha256sum line forms, text "hash  name" and binary "hash *name", are read', (t) => {
  t.deepEqual(parseSha256Sums(`${HASH}  kv-plugin\n${HASH.toUpperCase()} *bin/other\n`), [
    { path: 'kv-plugin', sha256: HASH },
    { path: 'bin/other', sha256: HASH },
  ]);
});

test('a leading ./ is dropped and CRLF line ends are accepted', (t) => {
  t.deepEqual(parseSha256Sums(`${HASH}  ./kv\r\n`), [{ path: 'kv', sha256: HASH }]);
});

const refusals: Array<[string, string, RegExp]> = [
  ['a BSD tag line', `SHA256 (kv) = ${HASH}\n`, /line 1: expected/],
  ['one space and no mode character', `${HASH} kv\n`, /line 1: expected/],
  ['a short digest', `${HASH.slice(2)}  kv\n`, /line 1: expected/],
  ['an escaped name', `\\${HASH}  a\\\\b\n`, /line 1: escaped file names/],
  ['an absolute name', `${HASH}  /usr/bin/kv\n`, /line 1 must be relative/],
  ['a name with ..', `${HASH}  x\n${HASH}  ../kv\n`, /line 2 must not contain "\.\."/],
  ['a name listed twice', `${HASH}  kv\n${HASH} *./kv\n`, /line 2: "kv" is listed twice/],
  ['a blank line in the middle', `${HASH}  kv\n\n${HASH}  other\n`, /line 2: expected/],
];
for (const [what, text, message] of refusals) {
  test(`SHA256SUMS with ${what} is MANIFEST_INVALID, naming the line`, (t) => {
    t.throws(() => parseSha256Sums(text), { code: 'MANIFEST_INVALID', message });
  });
}

test('output of the real sha256sum, in both modes, becomes a manifest of the files with their sizes', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'kv-plugin', '#!/bin/sh\necho kv\n', 0o755);
  await writeFileWithMode(dir, 'tools/other', 'other bytes', 0o755);
  const text = execFileSync('sha256sum', ['kv-plugin'], { cwd: dir, encoding: 'utf8' }) + execFileSync('sha256sum', ['-b', 'tools/other'], { cwd: dir, encoding: 'utf8' });
  const manifest = await manifestFromSha256Sums(text, { dir, version: 4, expires });
  t.is(manifest.version, 4);
  t.is(manifest.expires, '2031-06-01T00:00:00.000Z');
  t.deepEqual(
    manifest.plugins.map((p) => [p.name, p.path, p.size]),
    [
      ['kv-plugin', 'kv-plugin', 18],
      ['tools/other', 'tools/other', 11],
    ],
  );
  t.is(manifest.plugins[1]?.sha256, execFileSync('sha256sum', [join(dir, 'tools/other')], { encoding: 'utf8' }).slice(0, 64));
});

test('a file that no longer matches its SHA256SUMS line is DIGEST_MISMATCH', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'kv', 'changed after the release', 0o755);
  await t.throwsAsync(manifestFromSha256Sums(`${HASH}  kv\n`, { dir, version: 1, expires }), { code: 'DIGEST_MISMATCH' });
});

test('a file SHA256SUMS lists but the directory lacks is FILE_NOT_FOUND', async (t) => {
  const dir = await tempDir(t);
  await t.throwsAsync(manifestFromSha256Sums(`${HASH}  kv\n`, { dir, version: 1, expires }), { code: 'FILE_NOT_FOUND' });
});

test('the files SHA256SUMS lists pass the same file-safety checks as --glob: a link out of DIR, another user\'s file or one others can write is refused alike', async (t) => {
  const root = await tempDir(t);
  const dir = join(root, 'plugins');
  await writeFileWithMode(root, 'outside/s', '#!/bin/sh\n', 0o755);
  await mkdir(dir, { mode: 0o755 });
  await symlink('../outside', join(dir, 'linkdir'));
  await writeFileWithMode(dir, 'ww', '#!/bin/sh\n', 0o757);
  await writeFileWithMode(dir, 'plain', '#!/bin/sh\n', 0o644);
  const cases: [string, string][] = [
    ['linkdir/s', 'FILE_SYMLINK_ESCAPES'],
    ['ww', 'FILE_WRITABLE_BY_OTHERS'],
    ['plain', 'FILE_NOT_EXECUTABLE'],
  ];
  if (runningAsRoot) {
    await chown(await writeFileWithMode(dir, 'theirs', '#!/bin/sh\n', 0o755), 65534, 65534);
    cases.push(['theirs', 'FILE_BAD_OWNER']);
  } else t.log('not root: another user\'s file is not tried');
  for (const [name, code] of cases) {
    const sha256 = execFileSync('sha256sum', [name], { cwd: dir, encoding: 'utf8' }).slice(0, 64);
    const message = new RegExp(name.replace('/', '\\/'));
    await t.throwsAsync(createManifest(dir, { patterns: [name], version: 1, expires }), { code, message }, `--glob ${name}`);
    await t.throwsAsync(manifestFromSha256Sums(`${sha256}  ${name}\n`, { dir, version: 1, expires }), { code, message }, `SHA256SUMS ${name}`);
  }
});

test('an empty SHA256SUMS is MANIFEST_INVALID', async (t) => {
  const dir = await tempDir(t);
  await t.throwsAsync(manifestFromSha256Sums('', { dir, version: 1, expires }), { code: 'MANIFEST_INVALID' });
});

test('property: parseSha256Sums throws nothing but GatehouseError on hostile text', (t) => {
  fc.assert(fc.property(hostileText([`${HASH}  kv\n${HASH} *bin/x\n`]), throwsOnlyGatehouseErrors(parseSha256Sums)), { numRuns: 3000 });
  t.pass();
});
