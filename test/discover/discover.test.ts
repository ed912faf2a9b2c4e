import test from 'ava';
import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { discover } from '../../src/discover/discover.js';
import { tempDir, writeFileWithMode } from './temp-dir.js';

function summary(results: Awaited<ReturnType<typeof discover>>): string[] {
  return results.map((r) => (r.ok ? `${r.candidate.name} ok` : `${r.name} ${r.error.code}`));
}

test('discover finds the files matching the patterns, sorted by name, with their facts', async (t) => {
  const root = await tempDir(t);
  await writeFileWithMode(root, 'b-plugin', '#!/bin/sh\n', 0o755);
  await writeFileWithMode(root, 'a-plugin', '#!/bin/sh\necho\n', 0o700);
  await writeFileWithMode(root, 'README', 'not a plugin\n', 0o644);
  const results = await discover(root, ['*-plugin']);
  t.deepEqual(summary(results), ['a-plugin ok', 'b-plugin ok']);
  const first = results[0];
  if (!first?.ok) return t.fail('expected a candidate');
  t.is(first.candidate.path, join(root, 'a-plugin'));
  t.is(first.candidate.realPath, join(root, 'a-plugin'));
  t.is(first.candidate.size, 15);
  t.is(first.candidate.mode & 0o777, 0o700);
});

test('discover reports each unsafe file with its own code instead of stopping at the first', async (t) => {
  const root = await tempDir(t);
  await writeFileWithMode(root, 'good', '#!/bin/sh\n', 0o755);
  await writeFileWithMode(root, 'not-executable', '#!/bin/sh\n', 0o644);
  await writeFileWithMode(root, 'writable', '#!/bin/sh\n', 0o777);
  t.deepEqual(summary(await discover(root, ['*'])), ['good ok', 'not-executable FILE_NOT_EXECUTABLE', 'writable FILE_WRITABLE_BY_OTHERS']);
});

test('discover walks nested directories with ** and names files by their relative path', async (t) => {
  const root = await tempDir(t);
  await writeFileWithMode(root, 'x/tool', '#!/bin/sh\n', 0o755);
  await writeFileWithMode(root, 'y/tool', '#!/bin/sh\n', 0o755);
  t.deepEqual(summary(await discover(root, ['**/tool'])), ['x/tool ok', 'y/tool ok']);
});

test('discover neither follows nor returns symbolic links', async (t) => {
  const base = await tempDir(t);
  const root = join(base, 'plugins');
  await mkdir(root, { mode: 0o755 });
  await writeFileWithMode(base, 'outside/evil', '#!/bin/sh\n', 0o755);
  await symlink(join(base, 'outside/evil'), join(root, 'link-to-file'));
  await symlink(join(base, 'outside'), join(root, 'link-to-dir'));
  await writeFileWithMode(root, 'real', '#!/bin/sh\n', 0o755);
  t.deepEqual(summary(await discover(root, ['**/*'])), ['real ok']);
});

test('discover skips dot files', async (t) => {
  const root = await tempDir(t);
  await writeFileWithMode(root, '.hidden', '#!/bin/sh\n', 0o755);
  t.deepEqual(await discover(root, ['*']), []);
});

for (const [label, patternFor] of [
  ['relative', () => '../*'],
  ['absolute', (base: string) => `${base}/*`],
] as const) {
  test(`a ${label} pattern that reaches outside the plugin directory is INVALID_OPTIONS`, async (t) => {
    const base = await tempDir(t);
    const pattern = patternFor(base);
    const root = join(base, 'plugins');
    await mkdir(root, { mode: 0o755 });
    await writeFileWithMode(base, 'outside', '#!/bin/sh\n', 0o755);
    await t.throwsAsync(discover(root, [pattern]), { code: 'INVALID_OPTIONS' });
  });
}

test('a plugin directory that does not exist is FILE_NOT_FOUND', async (t) => {
  const base = await tempDir(t);
  await t.throwsAsync(discover(join(base, 'nope'), ['*']), { code: 'FILE_NOT_FOUND' });
});

test('no patterns is INVALID_OPTIONS', async (t) => {
  const root = await tempDir(t);
  await t.throwsAsync(discover(root, []), { code: 'INVALID_OPTIONS' });
});
