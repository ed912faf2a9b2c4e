import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File, sha256Files } from '../../src/verify/hash.js';
import { tempDir } from '../discover/temp-dir.js';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

test('sha256File gives the FIPS 180-2 digest of "abc" and of the empty file', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'abc'), 'abc');
  await writeFile(join(dir, 'empty'), '');
  t.deepEqual(await sha256File(join(dir, 'abc')), { sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', size: 3 });
  t.deepEqual(await sha256File(join(dir, 'empty')), { sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', size: 0 });
});

test('sha256File hashes every byte of a file spanning many read chunks', async (t) => {
  const dir = await tempDir(t);
  const data = randomBytes(3 * (1 << 20) + 5);
  await writeFile(join(dir, 'big'), data);
  t.deepEqual(await sha256File(join(dir, 'big')), { sha256: sha256(data), size: data.length });
});

test('sha256File refuses a symbolic link instead of hashing what it points to', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'target'), 'x');
  await symlink('target', join(dir, 'link'));
  await t.throwsAsync(sha256File(join(dir, 'link')), { code: 'FILE_NOT_REGULAR' });
});

test('sha256File refuses a FIFO without waiting for a writer', async (t) => {
  const dir = await tempDir(t);
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  await t.throwsAsync(sha256File(join(dir, 'fifo')), { code: 'FILE_NOT_REGULAR' });
});

test('sha256File on a missing file is FILE_NOT_FOUND', async (t) => {
  const dir = await tempDir(t);
  await t.throwsAsync(sha256File(join(dir, 'missing')), { code: 'FILE_NOT_FOUND' });
});

for (const concurrency of [1, 3]) {
  test(`sha256Files with concurrency ${concurrency} answers for every path, in order, failures included`, async (t) => {
    const dir = await tempDir(t);
    const contents = Array.from({ length: 9 }, (_, i) => randomBytes(i * 70_000));
    const paths = await Promise.all(
      contents.map(async (data, i) => {
        await writeFile(join(dir, `f${i}`), data);
        return join(dir, `f${i}`);
      }),
    );
    const results = await sha256Files([...paths, join(dir, 'missing')], concurrency);
    t.deepEqual(
      results.slice(0, -1),
      contents.map((data, i) => ({ path: paths[i], ok: true, sha256: sha256(data), size: data.length })),
    );
    const last = results.at(-1);
    t.like(last, { path: join(dir, 'missing'), ok: false });
    t.is(last?.ok === false ? last.error.code : undefined, 'FILE_NOT_FOUND');
  });
}

test('sha256Files refuses a concurrency that is not a positive integer', async (t) => {
  await t.throwsAsync(sha256Files([], 0), { code: 'INVALID_OPTIONS' });
});

test('sha256Files reuses its hash threads across calls, and an idle pool does not keep the process alive', (t) => {
  const hashModule = new URL('../../src/verify/hash.js', import.meta.url).href;
  const script = `const { sha256Files } = await import(${JSON.stringify(hashModule)});
    const first = await sha256Files(['/etc/hostname', '/etc/passwd'], 2);
    const second = await sha256Files(['/etc/hostname', '/etc/passwd'], 2);
    console.log(JSON.stringify([first, second].map((r) => r.map((x) => x.sha256))));`;
  // The child must end by itself once both calls are done: execFileSync's timeout fails the test otherwise.
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }).toString();
  const [first, second] = JSON.parse(output) as string[][];
  t.deepEqual(first, second);
  t.is(first?.length, 2);
});
