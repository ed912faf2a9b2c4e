import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readPublicKeyFile, readSecretKeyFile, writeKeyPair } from '../../src/verify/key-files.js';
import { generateKeyPair } from '../../src/verify/minisign-key.js';
import { signBytes, verifySignature } from '../../src/verify/minisign-signature.js';
import { tempDir } from '../discover/temp-dir.js';

const MINISIGN = '/usr/bin/minisign';
const run = promisify(execFile);

/** A test that needs the real minisign: fails under CI when it is missing, and is skipped visibly elsewhere. */
function interop(title: string, body: (t: ExecutionContext, dir: string) => Promise<void>): void {
  test(title, async (t) => {
    if (!existsSync(MINISIGN)) {
      if (process.env.CI === 'true') t.fail(`${MINISIGN} is missing; CI must install the minisign package`);
      else t.log(`skipped: ${MINISIGN} is not installed (apt-get install minisign)`);
      t.pass();
      return;
    }
    const dir = await tempDir(t);
    await writeFile(join(dir, 'data'), 'bytes to sign\n');
    await body(t, dir);
  });
}

async function minisignKeyPair(dir: string): Promise<void> {
  await run(MINISIGN, ['-G', '-W', '-p', join(dir, 'ms.pub'), '-s', join(dir, 'ms.key')]);
}

interop('a signature made by minisign -S with a minisign -G -W key verifies with gatehouse', async (t, dir) => {
  await minisignKeyPair(dir);
  await run(MINISIGN, ['-S', '-s', join(dir, 'ms.key'), '-m', join(dir, 'data'), '-t', 'signed by minisign']);
  const key = await readPublicKeyFile(join(dir, 'ms.pub'));
  const verified = verifySignature(await readFile(join(dir, 'data.minisig'), 'utf8'), await readFile(join(dir, 'data')), key);
  t.deepEqual(verified, { keyId: key.keyId, algorithm: 'ED', trustedComment: 'signed by minisign' });
});

interop('a legacy signature made by minisign -S -l verifies with gatehouse', async (t, dir) => {
  await minisignKeyPair(dir);
  await run(MINISIGN, ['-S', '-l', '-s', join(dir, 'ms.key'), '-m', join(dir, 'data'), '-t', 'legacy']);
  const key = await readPublicKeyFile(join(dir, 'ms.pub'));
  t.is(verifySignature(await readFile(join(dir, 'data.minisig'), 'utf8'), await readFile(join(dir, 'data')), key).algorithm, 'Ed');
});

interop('minisign -V -H accepts a prehashed signature gatehouse made with a gatehouse key', async (t, dir) => {
  const { publicKeyPath } = await writeKeyPair(join(dir, 'gh'), generateKeyPair());
  const secretKey = await readSecretKeyFile(join(dir, 'gh.key'));
  await writeFile(join(dir, 'data.minisig'), signBytes(await readFile(join(dir, 'data')), secretKey, { trustedComment: 'signed by gatehouse' }));
  const { stdout } = await run(MINISIGN, ['-V', '-H', '-p', publicKeyPath, '-m', join(dir, 'data')]);
  t.regex(stdout, /Trusted comment: signed by gatehouse/);
});

interop('minisign -V refuses a gatehouse signature whose trusted comment was changed, as gatehouse does', async (t, dir) => {
  const { publicKeyPath } = await writeKeyPair(join(dir, 'gh'), generateKeyPair());
  const secretKey = await readSecretKeyFile(join(dir, 'gh.key'));
  const signature = signBytes(await readFile(join(dir, 'data')), secretKey, { trustedComment: 'version:1' }).replace('version:1', 'version:2');
  await writeFile(join(dir, 'data.minisig'), signature);
  await t.throwsAsync(run(MINISIGN, ['-V', '-p', publicKeyPath, '-m', join(dir, 'data')]));
  t.throws(() => verifySignature(signature, Buffer.from('bytes to sign\n'), secretKey), { code: 'SIGNATURE_INVALID' });
});

interop("gatehouse signs with minisign's unencrypted secret key, and minisign -V accepts the result", async (t, dir) => {
  await minisignKeyPair(dir);
  const secretKey = await readSecretKeyFile(join(dir, 'ms.key'));
  t.is(secretKey.keyId, (await readPublicKeyFile(join(dir, 'ms.pub'))).keyId);
  await writeFile(join(dir, 'data.minisig'), signBytes(await readFile(join(dir, 'data')), secretKey, { trustedComment: 'ours' }));
  await t.notThrowsAsync(run(MINISIGN, ['-V', '-p', join(dir, 'ms.pub'), '-m', join(dir, 'data')]));
});

interop("minisign -S signs with gatehouse's secret key, and gatehouse verifies the result", async (t, dir) => {
  const pair = generateKeyPair();
  await writeKeyPair(join(dir, 'gh'), pair);
  await run(MINISIGN, ['-S', '-s', join(dir, 'gh.key'), '-m', join(dir, 'data'), '-t', 'theirs']);
  t.is(verifySignature(await readFile(join(dir, 'data.minisig'), 'utf8'), await readFile(join(dir, 'data')), pair.publicKey).trustedComment, 'theirs');
});

interop('minisign -R derives from the gatehouse secret key the public key gatehouse wrote', async (t, dir) => {
  await writeKeyPair(join(dir, 'gh'), generateKeyPair());
  await run(MINISIGN, ['-R', '-s', join(dir, 'gh.key'), '-p', join(dir, 'derived.pub')]);
  t.deepEqual(await readPublicKeyFile(join(dir, 'derived.pub')), await readPublicKeyFile(join(dir, 'gh.pub')));
});

interop('minisign -V refuses the identity key and R = identity, S = 0 over any data, and gatehouse refuses that key as it is read', async (t, dir) => {
  const identity = Buffer.alloc(32);
  identity[0] = 1;
  const keyId = Buffer.from('0123456789ABCDEF', 'hex').reverse();
  const forged = Buffer.concat([identity, Buffer.alloc(32)]);
  await writeFile(join(dir, 'weak.pub'), `untrusted comment: weak\n${Buffer.concat([Buffer.from('Ed'), keyId, identity]).toString('base64')}\n`);
  const signatureLine = Buffer.concat([Buffer.from('ED'), keyId, forged]).toString('base64');
  await writeFile(join(dir, 'data.minisig'), `untrusted comment: forged\n${signatureLine}\ntrusted comment: forged\n${forged.toString('base64')}\n`);
  await t.throwsAsync(run(MINISIGN, ['-V', '-p', join(dir, 'weak.pub'), '-m', join(dir, 'data')]));
  await t.throwsAsync(readPublicKeyFile(join(dir, 'weak.pub')), { code: 'KEY_INVALID', message: /small order/ });
});
