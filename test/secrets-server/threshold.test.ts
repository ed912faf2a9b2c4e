// K of N: an operator who trusts several release keys and asks for K signatures gets exactly that, at every start.
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { generateKeyPair, signManifest, writeKeyPair } from 'gatehouse-plugins';
import { initHome, type ServerConfig } from '../../examples/secrets-server/config.js';
import { buildRelease } from '../../examples/secrets-server/release.js';
import { startServer } from '../../examples/secrets-server/server.js';

test('server: with release.threshold 2 of 3 trusted keys, a release signed by one key is refused at mount, and mounts once a second key signs', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'gatehouse-secrets-threshold-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'signing'), { mode: 0o700 });
  await mkdir(join(root, 'trusted'));
  const keys = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
  for (const [i, key] of keys.entries()) {
    const { publicKeyPath } = await writeKeyPair(join(root, 'signing', `k${i}`), key);
    await copyFile(publicKeyPath, join(root, 'trusted', `k${i}.pub`));
  }
  const [first, second] = keys as [ReturnType<typeof generateKeyPair>, ReturnType<typeof generateKeyPair>];
  const { manifestPath } = await buildRelease({ outDir: join(root, 'release'), engines: [{ engine: 'kv', version: '1.0.0' }], secretKey: first.secretKey, manifestVersion: 1 });
  const home = join(root, 'home');
  const { rootToken } = await initHome({ home, release: { manifest: manifestPath, trustedKeysDir: join(root, 'trusted') }, port: 0 });
  // As an operator would: edit the home's config to require two of the three keys.
  const configPath = join(home, 'config.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as ServerConfig;
  await writeFile(configPath, JSON.stringify({ ...config, release: { ...config.release, threshold: 2 } }));
  const lines: string[] = [];
  const server = await startServer({ home, say: (line) => lines.push(line) });
  t.teardown(() => server.close());
  const mount = async () => {
    const response = await fetch(`${server.url}/v1/sys/mounts/secret`, { method: 'POST', headers: { 'x-vault-token': rootToken }, body: JSON.stringify({ plugin: 'kv', version: '1.0.0' }) });
    return { status: response.status, json: (await response.json()) as { code?: string; errors?: string[]; data?: { keyIds: string[] } } };
  };
  // One stolen release key must not be enough to run code in the secrets server.
  const refused = await mount();
  t.is(refused.status, 400, JSON.stringify(refused.json));
  t.is(refused.json.code, 'plugin_refused');
  t.regex(refused.json.errors?.[0] ?? '', /THRESHOLD_NOT_MET/);
  t.true(lines.some((line) => /releases need 2 signatures of the 3 trusted keys/.test(line)), lines.join('\n'));
  // A second signer adds their signature beside the first (manifest.json.<KEYID>.minisig): now it mounts.
  await writeFile(`${manifestPath}.${second.secretKey.keyId}.minisig`, signManifest(await readFile(manifestPath), second.secretKey));
  const mounted = await mount();
  t.is(mounted.status, 200, JSON.stringify(mounted.json));
  t.deepEqual([...(mounted.json.data?.keyIds ?? [])].sort(), [first.secretKey.keyId, second.secretKey.keyId].sort());
});

test('server: a release.threshold above the number of trusted keys, or not a positive integer, stops the start saying so', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'gatehouse-secrets-threshold-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'signing'), { mode: 0o700 });
  await mkdir(join(root, 'trusted'));
  const { publicKeyPath } = await writeKeyPair(join(root, 'signing', 'k0'), generateKeyPair());
  await copyFile(publicKeyPath, join(root, 'trusted', 'k0.pub'));
  const home = join(root, 'home');
  await initHome({ home, release: { manifest: join(root, 'manifest.json'), trustedKeysDir: join(root, 'trusted') }, port: 0 });
  const configPath = join(home, 'config.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as ServerConfig;
  for (const [threshold, message] of [
    [2, /release\.threshold is 2 but .*trusted holds 1 trusted key/],
    [0, /release\.threshold must be a positive integer, got 0/],
    ['2', /release\.threshold must be a positive integer, got "2"/],
  ] as const) {
    await writeFile(configPath, JSON.stringify({ ...config, release: { ...config.release, threshold } }));
    const error = await t.throwsAsync(startServer({ home, say: () => {} }));
    t.like(error, { code: 'invalid_config' });
    t.regex(error?.message ?? '', message);
  }
});
