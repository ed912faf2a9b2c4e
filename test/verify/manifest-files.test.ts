import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatManifest } from '../../src/verify/manifest.js';
import { findSignatureFiles, verifyManifestFile } from '../../src/verify/manifest-files.js';
import { generateKeyPair } from '../../src/verify/minisign-key.js';
import { signManifest } from '../../src/verify/sign-manifest.js';
import { tempDir } from '../discover/temp-dir.js';

const [alice, bob] = [generateKeyPair(), generateKeyPair()];
const text = formatManifest({ schema: 'gatehouse.manifest/v1', version: 2, expires: '2099-01-01T00:00:00Z', plugins: [] });

test('the signatures of a manifest are MANIFEST.minisig, then every MANIFEST.<label>.minisig in name order', async (t) => {
  const dir = await tempDir(t);
  for (const name of ['m.json', 'm.json.minisig', 'm.json.B.minisig', 'm.json.A.minisig', 'other.minisig', 'm.jsonX.minisig']) await writeFile(join(dir, name), '');
  t.deepEqual(await findSignatureFiles(join(dir, 'm.json')), ['m.json.minisig', 'm.json.A.minisig', 'm.json.B.minisig'].map((name) => join(dir, name)));
});

test('verifyManifestFile reads a manifest and its signature files and applies the threshold over them', async (t) => {
  const dir = await tempDir(t);
  const manifestPath = join(dir, 'manifest.json');
  await writeFile(manifestPath, text);
  await writeFile(`${manifestPath}.minisig`, signManifest(Buffer.from(text), alice.secretKey));
  const policy = { trustedKeys: [alice.publicKey, bob.publicKey], threshold: 2 };
  await t.throwsAsync(verifyManifestFile(manifestPath, policy), { code: 'THRESHOLD_NOT_MET' });
  await writeFile(join(dir, `manifest.json.${bob.publicKey.keyId}.minisig`), signManifest(Buffer.from(text), bob.secretKey));
  t.is((await verifyManifestFile(manifestPath, policy)).signatures.length, 2);
});

test('a manifest file over 1 MiB is MANIFEST_TOO_LARGE without being read whole', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'big.json'), Buffer.alloc(2 * 1024 * 1024, 0x20));
  await t.throwsAsync(verifyManifestFile(join(dir, 'big.json'), { trustedKeys: [alice.publicKey] }), { code: 'MANIFEST_TOO_LARGE' });
});

test('more signature files than any threshold needs are refused before any is opened (20,000 of them would be read at once)', async (t) => {
  const dir = await tempDir(t);
  const manifestPath = join(dir, 'manifest.json');
  await writeFile(manifestPath, text);
  // FIFOs: opening one is refused as FILE_NOT_REGULAR, so that code would show any file was opened.
  for (let i = 0; i < 65; i++) await promisify(execFile)('/usr/bin/mkfifo', [join(dir, `manifest.json.${String(i).padStart(2, '0')}.minisig`)]);
  await t.throwsAsync(verifyManifestFile(manifestPath, { trustedKeys: [alice.publicKey] }), {
    code: 'SIGNATURE_INVALID',
    message: /manifest\.json: 65 signature files, more than 64/,
  });
});
