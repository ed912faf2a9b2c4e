import test from 'ava';
import { createHash } from 'node:crypto';
import { createManifest } from '../../src/verify/manifest-create.js';
import { parseManifest, formatManifest } from '../../src/verify/manifest.js';
import { join } from 'node:path';
import { tempDir, writeFileWithMode } from '../discover/temp-dir.js';

const expires = new Date('2031-06-01T00:00:00Z');

test('createManifest lists every matching plugin with its digest and size, named by its path', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'b', '#!/bin/sh\necho b\n', 0o755);
  await writeFileWithMode(dir, 'a', '#!/bin/sh\necho a\n', 0o755);
  await writeFileWithMode(dir, 'sub/c', '#!/bin/sh\necho c\n', 0o755);
  const manifest = await createManifest(dir, { version: 1, expires });
  t.deepEqual(manifest, {
    schema: 'gatehouse.manifest/v1',
    version: 1,
    expires: '2031-06-01T00:00:00.000Z',
    plugins: ['a', 'b'].map((name) => ({
      name,
      path: name,
      sha256: createHash('sha256').update(`#!/bin/sh\necho ${name}\n`).digest('hex'),
      size: 17,
    })),
  });
  t.deepEqual(parseManifest(formatManifest(manifest)), manifest);
  t.deepEqual(
    (await createManifest(dir, { patterns: ['**/*'], version: 2, expires })).plugins.map((p) => p.path),
    ['a', 'b', 'sub/c'],
  );
});

test('createManifest refuses to vouch for a plugin that fails a file-safety check', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'good', '#!/bin/sh\n', 0o755);
  await writeFileWithMode(dir, 'shared', '#!/bin/sh\n', 0o757);
  await t.throwsAsync(createManifest(dir, { version: 1, expires }), { code: 'FILE_WRITABLE_BY_OTHERS', message: /shared/ });
});

test('createManifest refuses to make a manifest of nothing: a DIR that is not a directory, or patterns that match no file, say what to do', async (t) => {
  const dir = await tempDir(t);
  const file = await writeFileWithMode(dir, 'a', '#!/bin/sh\n', 0o755);
  await t.throwsAsync(createManifest(file, { version: 1, expires }), { code: 'FILE_NOT_FOUND', message: /\/a: not a directory/ });
  await t.throwsAsync(createManifest(join(dir, 'missing'), { version: 1, expires }), { code: 'FILE_NOT_FOUND', message: /missing/ });
  await t.throwsAsync(createManifest(dir, { patterns: ['*.exe'], version: 1, expires }), {
    code: 'FILE_NOT_FOUND',
    message: /no file in .* matches \*\.exe; check DIR and the patterns/,
  });
  const empty = await tempDir(t);
  await t.throwsAsync(createManifest(empty, { version: 1, expires }), { code: 'FILE_NOT_FOUND', message: /matches \*;/ });
});

test('createManifest refuses a pattern that matches nothing among others that match: a typo would leave its plugin out of what is signed', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'kv', '#!/bin/sh\n', 0o755);
  await writeFileWithMode(dir, 'secrets', '#!/bin/sh\n', 0o755);
  await t.throwsAsync(createManifest(dir, { patterns: ['kv', 'secretz', 'k*'], version: 1, expires }), {
    code: 'FILE_NOT_FOUND',
    message: /no file in .* matches secretz \(the other patterns match\); check the pattern/,
  });
  const both = await createManifest(dir, { patterns: ['kv', 'secrets', 'k*'], version: 1, expires });
  t.deepEqual(
    both.plugins.map((plugin) => plugin.name),
    ['kv', 'secrets'],
    'a file matched by two patterns is listed once',
  );
});
