import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { chmod, chown, lchown, mkdir, symlink } from 'node:fs/promises';
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

// Issue 11 item 3: the path as written is checked, not only where it resolves to now.
/** A plugin directory under a sticky world-writable directory, as /tmp is, where anyone may add a link. */
async function stickyLayout(t: ExecutionContext) {
  const base = await tempDir(t);
  const plugin = await writeFileWithMode(base, 'plugins/plugin', '#!/bin/sh\n', 0o755);
  await mkdir(join(base, 'shared'));
  await chmod(join(base, 'shared'), 0o1777);
  return { root: join(base, 'plugins'), plugin, link: join(base, 'shared/plugin') };
}

test('a symbolic link owned by another user in a sticky directory on the path is FILE_BAD_OWNER (it could be flipped)', async (t) => {
  if (!runningAsRoot) {
    t.log('skipped: giving a link to another user needs root');
    t.pass();
    return;
  }
  const { root, plugin, link } = await stickyLayout(t);
  // Attack: another user's link to the vetted plugin passes a check of its target, then is re-pointed before exec.
  await symlink(plugin, link);
  await lchown(link, OTHER_UID, OTHER_UID);
  await t.throwsAsync(checkFileSafety(link, root), { code: 'FILE_BAD_OWNER' });
});

test("the host's own symbolic link in a sticky directory is followed and its target checked", async (t) => {
  const { root, plugin, link } = await stickyLayout(t);
  await symlink(plugin, link);
  t.is((await checkFileSafety(link, root)).realPath, plugin);
});

test('a symbolic link in a world-writable directory on the path as written is DIRECTORY_WRITABLE_BY_OTHERS', async (t) => {
  const base = await tempDir(t);
  const keys = join(base, 'keys');
  await writeFileWithMode(keys, 'vendor.pub', 'key\n', 0o644);
  await mkdir(join(base, 'open'));
  await chmod(join(base, 'open'), 0o777);
  // Attack: --trust names open/keys; whoever can write `open` swaps the link for a directory of their keys.
  await symlink(keys, join(base, 'open/keys'));
  await t.throwsAsync(checkFileSafety(join(base, 'open/keys/vendor.pub'), join(base, 'open/keys'), { executable: false }), {
    code: 'DIRECTORY_WRITABLE_BY_OTHERS',
  });
});

test('`..` after a symbolic link goes to the parent of its target, as the kernel resolves it', async (t) => {
  const base = await tempDir(t);
  const file = await writeFileWithMode(base, 'real/plugin', '#!/bin/sh\n', 0o755);
  await mkdir(join(base, 'real/deep'));
  await symlink(join(base, 'real/deep'), join(base, 'link'));
  // A template, not join(): join would fold `link/..` away before the check ever saw it.
  t.is((await checkFileSafety(`${base}/link/../plugin`, base)).realPath, file);
});
