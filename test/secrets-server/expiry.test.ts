// A release about to expire is visible where an operator looks while the engines run: GET /v1/sys/plugins and health.
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { generateKeyPair, writeKeyPair } from 'gatehouse-plugins';
import { initHome } from '../../examples/secrets-server/config.js';
import { buildRelease } from '../../examples/secrets-server/release.js';
import { startServer } from '../../examples/secrets-server/server.js';

async function serverWithRelease(t: import('ava').ExecutionContext, expiresInMs: number) {
  const root = await mkdtemp(join(tmpdir(), 'gatehouse-secrets-expiry-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'signing'), { mode: 0o700 });
  await mkdir(join(root, 'trusted'));
  const key = generateKeyPair();
  const { publicKeyPath } = await writeKeyPair(join(root, 'signing', 'k0'), key);
  await copyFile(publicKeyPath, join(root, 'trusted', 'k0.pub'));
  const expires = new Date(Date.now() + expiresInMs);
  const { manifestPath } = await buildRelease({ outDir: join(root, 'release'), engines: [{ engine: 'kv', version: '1.0.0' }], secretKey: key.secretKey, manifestVersion: 1, expires });
  const home = join(root, 'home');
  const { rootToken } = await initHome({ home, release: { manifest: manifestPath, trustedKeysDir: join(root, 'trusted') }, port: 0 });
  const server = await startServer({ home, say: () => {} });
  t.teardown(() => server.close());
  const get = async (path: string, token?: string) => (await fetch(server.url + path, { headers: token ? { 'x-vault-token': token } : {} })).json() as Promise<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const mounted = await fetch(`${server.url}/v1/sys/mounts/secret`, { method: 'POST', headers: { 'x-vault-token': rootToken }, body: JSON.stringify({ plugin: 'kv', version: '1.0.0' }) });
  t.is(mounted.status, 200);
  return { expires, get, rootToken };
}

test('server: a running engine whose release expires within a week is flagged in GET /v1/sys/plugins and in health, not only in the log at its start', async (t) => {
  const { expires, get, rootToken } = await serverWithRelease(t, 3 * 86_400_000);
  const [mount] = (await get('/v1/sys/plugins', rootToken)).data.mounts;
  // A long-running engine is never started again in the week before: a warning said only at start is never seen,
  // and the engine's next restart after the expiry (a crash, an idle stop) fails.
  t.is(mount.warnings.length, 1, JSON.stringify(mount));
  t.regex(mount.warnings[0], /manifest version 1 expires at .* \(in 2 days, 23 h\): kv-1\.0\.0 will not start again after that/);
  // Health, which monitoring polls without a token, says when the earliest release in use expires and that it is near.
  const health = await get('/v1/sys/health');
  t.like(health, { release_expires_utc: Math.floor(expires.getTime() / 1000), release_expiring: true });
});

test('server: a release far from its expiry raises no warning', async (t) => {
  const { get, rootToken } = await serverWithRelease(t, 30 * 86_400_000);
  const [mount] = (await get('/v1/sys/plugins', rootToken)).data.mounts;
  t.deepEqual(mount.warnings, []);
  t.like(await get('/v1/sys/health'), { release_expiring: false });
});
