import test from 'ava';
import { chmod, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readPublicKeyFile, readSecretKeyFile, writeKeyPair } from '../../src/verify/key-files.js';
import { generateKeyPair } from '../../src/verify/minisign-key.js';
import { tempDir } from '../discover/temp-dir.js';

test('writeKeyPair writes NAME.pub readable by all and NAME.key readable by its owner only', async (t) => {
  const dir = await tempDir(t);
  const pair = generateKeyPair();
  const written = await writeKeyPair(join(dir, 'release'), pair);
  t.deepEqual(written, { publicKeyPath: join(dir, 'release.pub'), secretKeyPath: join(dir, 'release.key') });
  t.is((await stat(written.secretKeyPath)).mode & 0o777, 0o600);
  t.is((await stat(written.publicKeyPath)).mode & 0o777, 0o644);
  t.deepEqual(await readPublicKeyFile(written.publicKeyPath), pair.publicKey);
  t.is((await readSecretKeyFile(written.secretKeyPath)).keyId, pair.secretKey.keyId);
});

test('writeKeyPair never overwrites an existing key, and leaves no half pair behind', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'release.pub'), 'precious');
  await t.throwsAsync(writeKeyPair(join(dir, 'release'), generateKeyPair()), { code: 'INVALID_OPTIONS' });
  await t.throwsAsync(stat(join(dir, 'release.key')));
  await t.throwsAsync(writeKeyPair(join(dir, 'other'), generateKeyPair()).then(() => writeKeyPair(join(dir, 'other'), generateKeyPair())), {
    code: 'INVALID_OPTIONS',
  });
});

test('a secret key file readable by group or others is KEY_INVALID', async (t) => {
  const dir = await tempDir(t);
  const { secretKeyPath } = await writeKeyPair(join(dir, 'release'), generateKeyPair());
  await chmod(secretKeyPath, 0o640);
  await t.throwsAsync(readSecretKeyFile(secretKeyPath), { code: 'KEY_INVALID', message: /chmod 600/ });
});

test('a key file larger than any key is KEY_INVALID before it is parsed', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'huge.pub'), 'x'.repeat(20_000));
  await t.throwsAsync(readPublicKeyFile(join(dir, 'huge.pub')), { code: 'KEY_INVALID', message: /larger than/ });
});
