// writeFileAtomic's refusals say what is wrong with the place written to, not "no such file".
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { isGatehouseError } from '../../src/errors.js';
import { writeFileAtomic } from '../../src/verify/atomic-file.js';

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
