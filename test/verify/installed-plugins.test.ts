import test from 'ava';
import { createHash } from 'node:crypto';
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { verifyPlugins } from '../../src/verify/installed-plugins.js';
import type { Manifest, ManifestPlugin } from '../../src/verify/manifest.js';
import { tempDir, writeFileWithMode } from '../discover/temp-dir.js';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const entry = (name: string, text: string, extra: Partial<ManifestPlugin> = {}): ManifestPlugin => ({ name, path: name, sha256: sha256(text), size: text.length, ...extra });
const manifestOf = (...plugins: ManifestPlugin[]): Manifest => ({ schema: 'gatehouse.manifest/v1', version: 1, expires: '2099-01-01T00:00:00Z', plugins });

function summary(results: Awaited<ReturnType<typeof verifyPlugins>>): string[] {
  return results.map((r) => `${r.name} ${r.ok ? 'ok' : r.error.code}`);
}

test('each plugin gets one line: ok, or the first thing wrong with one of its files', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'good', '#!/bin/sh\n', 0o755);
  await writeFileWithMode(dir, 'tampered', '#!/bin/sh\nevil\n', 0o755);
  await writeFileWithMode(dir, 'grown', '#!/bin/sh\n\n', 0o755);
  await writeFileWithMode(dir, 'shared', '#!/bin/sh\n', 0o777);
  await writeFileWithMode(dir, 'real', '#!/bin/sh\n', 0o755);
  await symlink('real', join(dir, 'linked'));
  const manifest = manifestOf(
    entry('good', '#!/bin/sh\n'),
    entry('tampered', '#!/bin/sh\ngood\n'),
    entry('grown', '#!/bin/sh\n'),
    entry('shared', '#!/bin/sh\n'),
    entry('missing', '#!/bin/sh\n'),
    entry('linked', '#!/bin/sh\n'),
  );
  t.deepEqual(summary(await verifyPlugins(manifest, dir)), [
    'good ok',
    'tampered DIGEST_MISMATCH',
    'grown SIZE_MISMATCH',
    'shared FILE_WRITABLE_BY_OTHERS',
    'missing FILE_NOT_FOUND',
    'linked FILE_NOT_REGULAR',
  ]);
});

test('an interpreted plugin is checked file by file: a tampered module fails it, a script need not be executable', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'main.sh', 'echo\n', 0o644);
  await writeFileWithMode(dir, 'lib.sh', 'lib\n', 0o644);
  const plugin = entry('main.sh', 'echo\n', { interpreter: { path: '/bin/sh' }, files: [{ path: 'lib.sh', sha256: sha256('lib\n'), size: 4 }] });
  t.deepEqual(summary(await verifyPlugins(manifestOf(plugin), dir)), ['main.sh ok']);
  await writeFile(join(dir, 'lib.sh'), 'LIB\n');
  t.deepEqual(summary(await verifyPlugins(manifestOf(plugin), dir)), ['main.sh DIGEST_MISMATCH']);
});

test('with patterns, a file the manifest does not list is PLUGIN_NOT_IN_MANIFEST', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'listed', '#!/bin/sh\n', 0o755);
  await writeFileWithMode(dir, 'planted', '#!/bin/sh\n', 0o755);
  t.deepEqual(summary(await verifyPlugins(manifestOf(entry('listed', '#!/bin/sh\n')), dir, { patterns: ['*'] })), ['listed ok', 'planted PLUGIN_NOT_IN_MANIFEST']);
});
