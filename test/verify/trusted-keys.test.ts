import test from 'ava';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatPublicKey, generateKeyPair } from '../../src/verify/minisign-key.js';
import { loadTrustedKeys } from '../../src/verify/trusted-keys.js';
import { tempDir, writeFileWithMode } from '../discover/temp-dir.js';

test('every *.pub file in the directory is a trusted key, in name order; other files are ignored', async (t) => {
  const dir = await tempDir(t);
  const [a, b] = [generateKeyPair(), generateKeyPair()];
  await writeFileWithMode(dir, 'b.pub', formatPublicKey(b.publicKey), 0o644);
  await writeFileWithMode(dir, 'a.pub', formatPublicKey(a.publicKey), 0o644);
  await writeFileWithMode(dir, 'README', 'not a key', 0o644);
  t.deepEqual(await loadTrustedKeys(dir), [a.publicKey, b.publicKey]);
});

test('a directory without keys is KEY_INVALID, and one that does not exist FILE_NOT_FOUND', async (t) => {
  const dir = await tempDir(t);
  await t.throwsAsync(loadTrustedKeys(dir), { code: 'KEY_INVALID', message: /no trusted keys/ });
  await t.throwsAsync(loadTrustedKeys(join(dir, 'missing')), { code: 'FILE_NOT_FOUND' });
});

test('a key file another user could write is FILE_WRITABLE_BY_OTHERS: they could make their own key trusted', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'a.pub', formatPublicKey(generateKeyPair().publicKey), 0o666);
  await t.throwsAsync(loadTrustedKeys(dir), { code: 'FILE_WRITABLE_BY_OTHERS' });
});

test('a keys directory another user could write is DIRECTORY_WRITABLE_BY_OTHERS', async (t) => {
  const base = await tempDir(t);
  const dir = join(base, 'keys');
  await mkdir(dir);
  await writeFileWithMode(dir, 'a.pub', formatPublicKey(generateKeyPair().publicKey), 0o644);
  await chmod(dir, 0o777);
  await t.throwsAsync(loadTrustedKeys(dir), { code: 'DIRECTORY_WRITABLE_BY_OTHERS' });
});

test('a malformed key file is KEY_INVALID, naming the file', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'broken.pub', 'untrusted comment: x\nnot base64\n', 0o644);
  await t.throwsAsync(loadTrustedKeys(dir), { code: 'KEY_INVALID', message: /broken\.pub/ });
});

test('two files with the same key id, or the same key, are KEY_INVALID', async (t) => {
  const dir = await tempDir(t);
  const a = generateKeyPair();
  await writeFileWithMode(dir, 'a.pub', formatPublicKey(a.publicKey), 0o644);
  await writeFileWithMode(dir, 'b.pub', formatPublicKey({ ...generateKeyPair().publicKey, keyId: a.publicKey.keyId }), 0o644);
  await t.throwsAsync(loadTrustedKeys(dir), { code: 'KEY_INVALID', message: /same key id or key/ });
  await writeFile(join(dir, 'b.pub'), formatPublicKey({ ...a.publicKey, keyId: '0123456789ABCDEF' }));
  await t.throwsAsync(loadTrustedKeys(dir), { code: 'KEY_INVALID', message: /same key id or key/ });
});
