// writeFileAtomic's refusals say what is wrong with the place written to, not "no such file"; writeNewFile
// leaves a whole new file or none.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { isGatehouseError } from '../../src/errors.js';
import { makeDirectories, writeFileAtomic, writeNewFile } from '../../src/verify/atomic-file.js';

test('writing into a directory that does not exist, or under a file, names the directory and leaves nothing behind', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-atomic-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  const missing = await t.throwsAsync(writeFileAtomic(join(dir, 'absent', 'plugin.js'), 'x'));
  t.true(isGatehouseError(missing) && missing.code === 'FILE_NOT_FOUND');
  t.is(missing?.message, `${join(dir, 'absent', 'plugin.js')}: cannot be written: there is no directory ${join(dir, 'absent')}; create it first`);

  await writeFile(join(dir, 'a-file'), 'content');
  const underFile = await t.throwsAsync(writeFileAtomic(join(dir, 'a-file', 'plugin.js'), 'x'));
  t.true(isGatehouseError(underFile) && underFile.code === 'FILE_NOT_FOUND');
  t.regex(underFile?.message ?? '', /: cannot be written: .*a-file is not a directory$/);

  t.deepEqual((await readdir(dir)).sort(), ['a-file']);
});

test('writeNewFile writes a new file whole or not at all: a write cut short leaves nothing, an existing file is never touched', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-atomic-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // A child under util-linux's prlimit: a write past 64 bytes fails with EFBIG, as on a full disk.
  const module = fileURLToPath(new URL('../../src/verify/atomic-file.js', import.meta.url));
  const script = `import(${JSON.stringify(module)}).then((m) => m.writeNewFile(process.argv[1], 'x'.repeat(4096), 0o600)).then(() => console.log('written'), (e) => console.log(e.code, e.message))`;
  const { stdout } = await promisify(execFile)('/usr/bin/prlimit', ['--fsize=64', process.execPath, '-e', script, join(dir, 'torn')]);
  t.is(stdout.trim(), `FILE_UNWRITABLE ${join(dir, 'torn')}: cannot be written (EFBIG)`);
  t.deepEqual(await readdir(dir), [], 'no torn file left for a later writeNewFile to refuse');

  await writeFile(join(dir, 'kept'), 'precious');
  const exists = await t.throwsAsync(writeNewFile(join(dir, 'kept'), 'new', 0o600));
  t.true(isGatehouseError(exists) && exists.code === 'INVALID_OPTIONS');
  t.regex(exists?.message ?? '', /kept already exists; refusing to overwrite it/);
  t.is(await readFile(join(dir, 'kept'), 'utf8'), 'precious');

  await writeNewFile(join(dir, 'new'), 'whole', 0o640);
  t.is(await readFile(join(dir, 'new'), 'utf8'), 'whole');
  t.is((await stat(join(dir, 'new'))).mode & 0o777, 0o640);
});

test('makeDirectories gives its mode to the directories it made and to no other, whatever the path spells', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'gatehouse-mkdirs-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  await chmod(base, 0o700);
  // `a` is made and left by `..`: the walk up from `b` must not pass through `base` (it was there), nor loop for ever.
  await makeDirectories(`${base}/a/../b/./c/`, 0o755);
  t.is((await stat(base)).mode & 0o777, 0o700, 'a directory that was there keeps its mode');
  t.is((await stat(join(base, 'b'))).mode & 0o777, 0o755);
  t.is((await stat(join(base, 'b', 'c'))).mode & 0o777, 0o755);
});
