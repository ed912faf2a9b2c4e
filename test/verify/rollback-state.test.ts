import test from 'ava';
import { chmod, chown, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileRollbackState, MemoryRollbackState } from '../../src/verify/rollback-state.js';
import { runningAsRoot, tempDir } from '../discover/temp-dir.js';

test('a file state with no file has accepted nothing yet', async (t) => {
  const dir = await tempDir(t);
  t.is(await new FileRollbackState(join(dir, 'state.json')).highestVersion(), undefined);
});

test('a file state records the highest version in a 0600 file, never lowers it, and survives a restart', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'state.json');
  const state = new FileRollbackState(file);
  await state.accept(3);
  await state.accept(2);
  t.is(await state.highestVersion(), 3);
  await state.accept(7);
  t.is(await new FileRollbackState(file).highestVersion(), 7);
  t.is(await readFile(file, 'utf8'), '{"highestVersion":7}\n');
  t.is((await stat(file)).mode & 0o777, 0o600);
  t.deepEqual(await readdir(dir), ['state.json'], 'no temporary file is left behind');
});

const corrupt: Array<[string, string]> = [
  ['empty', ''],
  ['not JSON', 'seven'],
  ['a negative version', '{"highestVersion": -1}'],
  ['a fractional version', '{"highestVersion": 1.5}'],
  ['an extra field', '{"highestVersion": 3, "x": 1}'],
  ['a duplicate key', '{"highestVersion": 9, "highestVersion": 1}'],
  ['an array', '[3]'],
];
for (const [what, text] of corrupt) {
  test(`a state file that is ${what} is STATE_INVALID, not "no state"`, async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'state.json'), text);
    await t.throwsAsync(new FileRollbackState(join(dir, 'state.json')).highestVersion(), { code: 'STATE_INVALID' });
  });
}

test('a symbolic link at the state path is refused rather than followed to another number', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'elsewhere'), '{"highestVersion": 999999}');
  await symlink(join(dir, 'elsewhere'), join(dir, 'state.json'));
  await t.throwsAsync(new FileRollbackState(join(dir, 'state.json')).highestVersion(), { code: 'FILE_NOT_REGULAR' });
});

// Issue 11 item 5: the state file and its directories pass the checks trusted keys pass.
test('a state file owned by another user, or writable by group or others, is refused', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'state.json');
  await writeFile(file, '{"highestVersion": 1}\n', { mode: 0o600 });
  await chmod(file, 0o620);
  await t.throwsAsync(new FileRollbackState(file).highestVersion(), { code: 'FILE_WRITABLE_BY_OTHERS' });
  if (runningAsRoot) {
    await chmod(file, 0o600);
    // Attack: another user pre-created the state file, 0600 and theirs: they choose the version the host trusts.
    await chown(file, 65534, 65534);
    await t.throwsAsync(new FileRollbackState(file).highestVersion(), { code: 'FILE_BAD_OWNER' });
  }
});

for (const mode of [0o777, 0o1777]) {
  test(`a state file in a directory with mode ${mode.toString(8)} is DIRECTORY_WRITABLE_BY_OTHERS, present or not`, async (t) => {
    const dir = join(await tempDir(t), 'shared');
    await mkdir(dir);
    await chmod(dir, mode);
    const file = join(dir, 'state.json');
    // Attack: whoever can write the directory deletes the file (rollback reopens) or plants their own before the host's.
    await t.throwsAsync(new FileRollbackState(file).highestVersion(), { code: 'DIRECTORY_WRITABLE_BY_OTHERS' });
    await t.throwsAsync(new FileRollbackState(file).accept(1), { code: 'DIRECTORY_WRITABLE_BY_OTHERS' });
    await writeFile(file, '{"highestVersion": 5}\n', { mode: 0o600 });
    await t.throwsAsync(new FileRollbackState(file).highestVersion(), { code: 'DIRECTORY_WRITABLE_BY_OTHERS' });
  });
}

test('a memory state keeps the highest version it was told about', (t) => {
  const state = new MemoryRollbackState();
  t.is(state.highestVersion(), undefined);
  state.accept(4);
  state.accept(2);
  t.is(state.highestVersion(), 4);
});
