import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { checkFileSafety } from '../../src/discover/file-safety.js';
import { runningAsRoot, tempDir, writeFileWithMode } from './temp-dir.js';

const OTHER_UID = 4242;

test('a regular executable owned by the host user, in a private tree, passes and reports its facts', async (t) => {
  const root = await tempDir(t);
  const file = await writeFileWithMode(root, 'plugin', '#!/bin/sh\n', 0o755);
  const safe = await checkFileSafety(file, root);
  t.is(safe.path, file);
  t.is(safe.realPath, file);
  t.is(safe.size, 10);
  t.is(safe.mode & 0o777, 0o755);
  t.is(safe.uid, process.geteuid?.() ?? -1);
});

test('a file that is not there is FILE_NOT_FOUND', async (t) => {
  const root = await tempDir(t);
  await t.throwsAsync(checkFileSafety(join(root, 'missing'), root), { code: 'FILE_NOT_FOUND' });
});

test('a directory in place of the plugin is FILE_NOT_REGULAR', async (t) => {
  const root = await tempDir(t);
  await mkdir(join(root, 'plugin'), { mode: 0o755 });
  await t.throwsAsync(checkFileSafety(join(root, 'plugin'), root), { code: 'FILE_NOT_REGULAR' });
});

test('a FIFO in place of the plugin is FILE_NOT_REGULAR', async (t) => {
  const root = await tempDir(t);
  const fifo = join(root, 'plugin');
  execFileSync('mkfifo', ['-m', '0755', fifo]);
  await t.throwsAsync(checkFileSafety(fifo, root), { code: 'FILE_NOT_REGULAR' });
});

test('a symbolic link that resolves outside the plugin directory is FILE_SYMLINK_ESCAPES', async (t) => {
  const base = await tempDir(t);
  const root = join(base, 'plugins');
  await mkdir(root, { mode: 0o755 });
  const outside = await writeFileWithMode(base, 'elsewhere', '#!/bin/sh\n', 0o755);
  await symlink(outside, join(root, 'plugin'));
  await t.throwsAsync(checkFileSafety(join(root, 'plugin'), root), { code: 'FILE_SYMLINK_ESCAPES' });
});

test('a symbolic link that stays inside the plugin directory is checked at its target', async (t) => {
  const root = await tempDir(t);
  const target = await writeFileWithMode(root, 'real/plugin', '#!/bin/sh\n', 0o755);
  await symlink('real/plugin', join(root, 'plugin'));
  const safe = await checkFileSafety(join(root, 'plugin'), root);
  t.is(safe.realPath, target);
});

test('a file owned by another user (not root) is FILE_BAD_OWNER', async (t) => {
  const root = await tempDir(t);
  const file = await writeFileWithMode(root, 'plugin', '#!/bin/sh\n', 0o755);
  if (runningAsRoot) {
    await chown(file, OTHER_UID, OTHER_UID);
    await t.throwsAsync(checkFileSafety(file, root), { code: 'FILE_BAD_OWNER' });
  } else {
    // Not root: we cannot give the file away, so the host pretends to be someone else instead.
    await t.throwsAsync(checkFileSafety(file, root, { uid: (process.geteuid?.() ?? 0) + 1 }), { code: 'FILE_BAD_OWNER' });
  }
});

for (const mode of [0o775, 0o757]) {
  test(`a file with mode ${mode.toString(8)} is FILE_WRITABLE_BY_OTHERS`, async (t) => {
    const root = await tempDir(t);
    const file = await writeFileWithMode(root, 'plugin', '#!/bin/sh\n', mode);
    await t.throwsAsync(checkFileSafety(file, root), { code: 'FILE_WRITABLE_BY_OTHERS' });
  });
}

test('a file without an execute bit is FILE_NOT_EXECUTABLE, unless execution is not asked for', async (t) => {
  const root = await tempDir(t);
  const file = await writeFileWithMode(root, 'plugin', '#!/bin/sh\n', 0o644);
  await t.throwsAsync(checkFileSafety(file, root), { code: 'FILE_NOT_EXECUTABLE' });
  await t.notThrowsAsync(checkFileSafety(file, root, { executable: false }));
});

test('a group- or world-writable directory between the plugin directory and the file is DIRECTORY_WRITABLE_BY_OTHERS', async (t) => {
  const root = await tempDir(t);
  const file = await writeFileWithMode(root, 'sub/plugin', '#!/bin/sh\n', 0o755);
  await chmod(join(root, 'sub'), 0o777);
  await t.throwsAsync(checkFileSafety(file, root), { code: 'DIRECTORY_WRITABLE_BY_OTHERS' });
  await chmod(join(root, 'sub'), 0o775);
  await t.throwsAsync(checkFileSafety(file, root), { code: 'DIRECTORY_WRITABLE_BY_OTHERS' });
});

test('a world-writable directory above the plugin directory is DIRECTORY_WRITABLE_BY_OTHERS', async (t) => {
  const base = await tempDir(t);
  await mkdir(join(base, 'shared/plugins'), { recursive: true, mode: 0o755 });
  await chmod(join(base, 'shared'), 0o777);
  const file = await writeFileWithMode(join(base, 'shared/plugins'), 'plugin', '#!/bin/sh\n', 0o755);
  await t.throwsAsync(checkFileSafety(file, join(base, 'shared/plugins')), { code: 'DIRECTORY_WRITABLE_BY_OTHERS' });
});

test('a sticky world-writable directory above the plugin directory is allowed, as /tmp is', async (t) => {
  const base = await tempDir(t);
  await mkdir(join(base, 'shared/plugins'), { recursive: true, mode: 0o755 });
  await chmod(join(base, 'shared'), 0o1777);
  const file = await writeFileWithMode(join(base, 'shared/plugins'), 'plugin', '#!/bin/sh\n', 0o755);
  await t.notThrowsAsync(checkFileSafety(file, join(base, 'shared/plugins')));
});

test('a sticky world-writable directory inside the plugin directory is still DIRECTORY_WRITABLE_BY_OTHERS', async (t) => {
  const root = await tempDir(t);
  const file = await writeFileWithMode(root, 'sub/plugin', '#!/bin/sh\n', 0o755);
  await chmod(join(root, 'sub'), 0o1777);
  await t.throwsAsync(checkFileSafety(file, root), { code: 'DIRECTORY_WRITABLE_BY_OTHERS' });
});

test('a directory on the path owned by another user is DIRECTORY_WRITABLE_BY_OTHERS', async (t) => {
  if (!runningAsRoot) {
    t.log('skipped: giving a directory to another user needs root');
    t.pass();
    return;
  }
  const root = await tempDir(t);
  const file = await writeFileWithMode(root, 'sub/plugin', '#!/bin/sh\n', 0o755);
  await chown(join(root, 'sub'), OTHER_UID, OTHER_UID);
  await t.throwsAsync(checkFileSafety(file, root), { code: 'DIRECTORY_WRITABLE_BY_OTHERS' });
});
