// Discovery, verification, seal and launch in one call, with every candidate reported and audited.
import test from 'ava';
import { appendFile, chmod, copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { discoverVerified, isGatehouseError, launchDiscovered, launchVerified, openAuditLog } from '../../src/index.js';
import { createManifest, formatManifest, generateKeyPair, signManifest } from '../../src/verify/index.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { sealRootDir, tempDir, writeFileWithMode } from '../discover/temp-dir.js';
import { goTest } from '../interop/go-binaries.js';

const DAY_MS = 86_400_000;

async function signedDir(dir: string) {
  const manifest = await createManifest(dir, { version: 1, expires: new Date(Date.now() + DAY_MS) });
  const manifestPath = join(dir, '..', `${dir.split('/').at(-1) ?? 'x'}.manifest.json`);
  await writeFile(manifestPath, formatManifest(manifest));
  const keys = generateKeyPair();
  await writeFile(`${manifestPath}.minisig`, signManifest(await readFile(manifestPath), keys.secretKey));
  return { manifestPath, policy: { trustedKeys: [keys.publicKey] } };
}

test('discoverVerified reports every candidate: verified, tampered, unlisted and unsafe, each with its code, and audits them', async (t) => {
  const dir = join(await tempDir(t), 'plugins');
  for (const name of ['good', 'changed']) await writeFileWithMode(dir, name, '#!/bin/sh\nexit 0\n', 0o755);
  const { manifestPath, policy } = await signedDir(dir);
  await appendFile(join(dir, 'changed'), '# tampered\n');
  await writeFileWithMode(dir, 'planted', '#!/bin/sh\nexit 0\n', 0o755);
  await writeFileWithMode(dir, 'writable', '#!/bin/sh\nexit 0\n', 0o755);
  await chmod(join(dir, 'writable'), 0o777);
  const auditPath = join(await tempDir(t), 'audit.jsonl');
  const audit = await openAuditLog(auditPath);
  const report = await discoverVerified({ manifestPath, pluginDir: dir, policy, audit });
  await audit.close();
  const byName = Object.fromEntries(report.map((candidate) => [candidate.name, candidate]));
  t.like(byName, {
    good: { status: 'verified' },
    changed: { status: 'tampered', code: 'SIZE_MISMATCH' },
    planted: { status: 'unlisted', code: 'PLUGIN_NOT_IN_MANIFEST' },
    writable: { status: 'unlisted', code: 'PLUGIN_NOT_IN_MANIFEST' },
  });
  const records = (await readFile(auditPath, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  t.is(records.filter((record) => record.type === 'discovery').length, 4);
  t.is(records.filter((record) => record.type === 'refusal').length, 3);
});

test('discoverVerified: the manifest and its signatures in the plugin directory are not reported as unlisted plugins', async (t) => {
  const dir = join(await tempDir(t), 'plugins');
  await writeFileWithMode(dir, 'plugin', '#!/bin/sh\nexit 0\n', 0o755);
  // The layout of docs/plugins.md and of `gatehouse install`: DIR/manifest.json, signed by two keys.
  const manifestPath = join(dir, 'manifest.json');
  await writeFile(manifestPath, formatManifest(await createManifest(dir, { version: 1, expires: new Date(Date.now() + DAY_MS) })));
  const [first, second] = [generateKeyPair(), generateKeyPair()];
  await writeFile(`${manifestPath}.minisig`, signManifest(await readFile(manifestPath), first.secretKey));
  await writeFile(`${manifestPath}.${second.publicKey.keyId}.minisig`, signManifest(await readFile(manifestPath), second.secretKey));
  await writeFileWithMode(dir, 'planted', '#!/bin/sh\nexit 0\n', 0o755);
  const report = await discoverVerified({ manifestPath, policy: { trustedKeys: [first.publicKey, second.publicKey], threshold: 2 } });
  t.deepEqual(
    report.map((candidate) => [candidate.name, candidate.status]),
    [
      ['plugin', 'verified'],
      ['planted', 'unlisted'],
    ],
  );
});

test('discoverVerified names the version of each entry that has one, in its report and its audit records', async (t) => {
  const dir = join(await tempDir(t), 'plugins');
  for (const name of ['step-1', 'step-2']) await writeFileWithMode(dir, name, '#!/bin/sh\nexit 0\n', 0o755);
  const listed = await createManifest(dir, { version: 1, expires: new Date(Date.now() + DAY_MS) });
  // Two signed versions of one plugin: without the version, the report tells them apart only by path.
  const manifest = { ...listed, plugins: listed.plugins.map((entry, i) => ({ ...entry, name: 'step', version: `${i + 1}.0.0` })) };
  const manifestPath = join(dir, '..', 'manifest.json');
  await writeFile(manifestPath, formatManifest(manifest));
  const keys = generateKeyPair();
  await writeFile(`${manifestPath}.minisig`, signManifest(await readFile(manifestPath), keys.secretKey));
  await appendFile(join(dir, 'step-2'), '# tampered\n');
  const auditPath = join(await tempDir(t), 'audit.jsonl');
  const audit = await openAuditLog(auditPath);
  const report = await discoverVerified({ manifestPath, pluginDir: dir, policy: { trustedKeys: [keys.publicKey] }, audit });
  await audit.close();
  t.deepEqual(
    report.map((candidate) => [candidate.name, candidate.version, candidate.status]),
    [
      ['step', '1.0.0', 'verified'],
      ['step', '2.0.0', 'tampered'],
    ],
  );
  const records = (await readFile(auditPath, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  t.deepEqual(
    records.filter((record) => record.type === 'discovery' || record.type === 'refusal').map((record) => [record.type, record.version]),
    [
      ['discovery', '1.0.0'],
      ['discovery', '2.0.0'],
      ['refusal', '2.0.0'],
    ],
  );
});

test('discoverVerified refuses a relative manifestPath, as launchVerified does, and says how to fix it', async (t) => {
  const error = await t.throwsAsync(discoverVerified({ manifestPath: 'plugins/manifest.json', policy: { trustedKeys: [generateKeyPair().publicKey] } }));
  t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
  t.regex(error?.message ?? '', /manifestPath must be an absolute path, got "plugins\/manifest.json": resolve it first \(path.resolve\(\)\)/);
});

test('discoverVerified calls a listed plugin that others can write unsafe', async (t) => {
  const dir = join(await tempDir(t), 'plugins');
  await writeFileWithMode(dir, 'plugin', '#!/bin/sh\nexit 0\n', 0o755);
  const { manifestPath, policy } = await signedDir(dir);
  // Attack: the signed bytes are intact, but anyone may now rewrite them between check and use.
  await chmod(join(dir, 'plugin'), 0o777);
  const [candidate] = await discoverVerified({ manifestPath, pluginDir: dir, policy });
  t.like(candidate, { name: 'plugin', status: 'unsafe', code: 'FILE_WRITABLE_BY_OTHERS' });
});

goTest('launchDiscovered reports the candidates and launches the chosen verified plugin', async (t, go) => {
  const dir = join(await tempDir(t), 'plugins');
  await copyFile(go.kvplugin, join(dir, '..', 'kv'));
  await writeFileWithMode(dir, 'kv', await readFile(join(dir, '..', 'kv')), 0o755);
  const { manifestPath, policy } = await signedDir(dir);
  await writeFileWithMode(dir, 'stray', '#!/bin/sh\nexit 0\n', 0o755);
  const { candidates, plugin } = await launchDiscovered({ manifestPath, pluginDir: dir, plugin: 'kv', policy, cookie: KV_COOKIE, seal: { parentDir: await sealRootDir(t) } });
  t.teardown(() => plugin.kill());
  t.deepEqual(
    candidates.map((candidate) => [candidate.name, candidate.status]),
    [
      ['kv', 'verified'],
      ['stray', 'unlisted'],
    ],
  );
  const kv = plugin.client(loadKVService());
  await kv.Put({ key: 'k', value: Buffer.from('v') });
  t.is((await kv.Get({ key: 'k' })).value.toString(), 'v');
});

test('discoverVerified and launchDiscovered audit a manifest they refuse (unsigned, expired), naming the manifest, as launchVerified does', async (t) => {
  const dir = join(await tempDir(t), 'plugins');
  await writeFileWithMode(dir, 'good', '#!/bin/sh\nexit 0\n', 0o755);
  const { manifestPath, policy } = await signedDir(dir);
  const auditPath = join(await tempDir(t), 'audit.jsonl');
  const audit = await openAuditLog(auditPath);
  // Expired: judged a day and more after it was signed for.
  const expired = { ...policy, now: new Date(Date.now() + 2 * DAY_MS) };
  await t.throwsAsync(discoverVerified({ manifestPath, pluginDir: dir, policy: expired, audit }), { code: 'MANIFEST_EXPIRED' });
  await t.throwsAsync(launchDiscovered({ manifestPath, pluginDir: dir, plugin: 'good', policy: expired, cookie: KV_COOKIE, audit }), { code: 'MANIFEST_EXPIRED' });
  await t.throwsAsync(launchVerified({ manifestPath, pluginDir: dir, plugin: 'good', policy: expired, cookie: KV_COOKIE, audit }), { code: 'MANIFEST_EXPIRED' });
  // Unsigned: its only signature is gone.
  await writeFile(`${manifestPath}.minisig`, '');
  await t.throwsAsync(discoverVerified({ manifestPath, pluginDir: dir, policy, audit }));
  await audit.close();
  const refusals = (await readFile(auditPath, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>).filter((record) => record.type === 'refusal');
  t.is(refusals.length, 4);
  t.like(refusals[0], { code: 'MANIFEST_EXPIRED', manifestPath });
  t.false('plugin' in (refusals[0] ?? {}), 'discoverVerified asks for no plugin');
  t.like(refusals[1], { code: 'MANIFEST_EXPIRED', manifestPath, plugin: 'good' });
  t.like(refusals[2], { code: 'MANIFEST_EXPIRED', manifestPath, plugin: 'good' });
  t.like(refusals[3], { manifestPath });
});
