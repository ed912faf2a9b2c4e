// The lock file is read back from disk, where anyone with the host's rights may have edited it.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { isGatehouseError } from '../../src/errors.js';
import { readLockFile } from '../../src/verify/lock-file.js';
import { tempDir } from '../discover/temp-dir.js';

const release = { dir: 'v3-abc', manifestVersion: 3, manifestSha256: 'a'.repeat(64), plugins: [{ name: 'kv', tree: 'b'.repeat(64) }] };

test('lock file: a malformed release record is LOCK_MISMATCH, never a crash', async (t) => {
  const path = join(await tempDir(t), 'plugins.lock.json');
  for (const plugins of [[null], [7], ['kv'], [{ name: 'kv' }]]) {
    await writeFile(path, JSON.stringify({ schema: 'gatehouse.lock/v1', current: { ...release, plugins } }));
    const error = await t.throwsAsync(readLockFile(path));
    t.true(isGatehouseError(error, 'LOCK_MISMATCH'), `${JSON.stringify(plugins)}: ${String(error)}`);
  }
  await writeFile(path, JSON.stringify({ schema: 'gatehouse.lock/v1', current: release }));
  t.like(await readLockFile(path), { current: { dir: 'v3-abc' } });
});
