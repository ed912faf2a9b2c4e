// The issue-12 user's path, from the packed package only: publish (keys, manifest, signature), then host
// (load keys, list the signed manifest's entries, launch a signed TypeScript plugin package and a signed Go
// plugin through launchVerified over mutual TLS), with imports from `gatehouse-plugins` alone.
import test from 'ava';
import { execFile } from 'node:child_process';
import { appendFile, chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { prepareSealRoot } from '../../src/verify/seal-root.js';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { transform } from 'esbuild';
import { goBinaries, goRequired } from '../interop/go-binaries.js';
import { installIntoPluginPackage, makeConsumerProject, makeRoot, type ConsumerProject } from './consumer-project.js';
import { repoRoot } from '../helpers/paths.js';

const run = promisify(execFile);
const TAR_PATH = '/usr/bin/tar';

/** The plugin, in TypeScript, as its author writes it; compiled with esbuild as its build would. */
const PLUGIN_TS = `import { fileURLToPath } from 'node:url';
import { loadSync } from '@grpc/proto-loader';
import { serve } from 'gatehouse-plugins/plugin';

interface PutRequest { key: string; value: Buffer }
const store = new Map<string, Buffer>();
// A data file found next to the entry, in place and in the sealed copy alike.
const kv = loadSync(fileURLToPath(new URL('./kv.proto', import.meta.url)), { keepCase: true, defaults: true });
await serve({
  cookie: { key: 'GATEHOUSE_KV_PLUGIN', value: 'd41f0b3c-kv' },
  versions: {
    1: [{
      definition: kv['kv.KV'] as never,
      implementation: {
        Put: (call: { request: PutRequest }, callback: (error: null, reply: object) => void) => {
          store.set(call.request.key, call.request.value);
          callback(null, {});
        },
        Get: (call: { request: { key: string } }, callback: (error: null, reply: object) => void) => {
          callback(null, { value: Buffer.concat([Buffer.from('ts:'), store.get(call.request.key) ?? Buffer.alloc(0)]) });
        },
      },
    }],
  },
});
`;

const PUBLISH = `import { createManifest, formatManifest, generateKeyPair, signManifest, writeKeyPair } from 'gatehouse-plugins';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
const [pluginsDir, trustDir, withGo] = process.argv.slice(2);
const keys = generateKeyPair();
await mkdir(trustDir, { mode: 0o755 });
await writeKeyPair(join(trustDir, 'publisher'), keys);
const manifest = await createManifest(pluginsDir, {
  version: 1,
  expires: new Date(Date.now() + 86_400_000),
  packages: [{ name: 'kv', dir: 'kv-ts' }],
  ...(withGo === 'go' ? { patterns: ['kv-go'] } : {}),
});
const manifestPath = join(pluginsDir, 'manifest.json');
await writeFile(manifestPath, formatManifest(manifest));
await writeFile(manifestPath + '.minisig', signManifest(await readFile(manifestPath), keys.secretKey));
`;

const HOST = `import { launchVerified, loadTrustedKeys, loadVerifiedManifest, openAuditLog } from 'gatehouse-plugins';
import { loadSync } from '@grpc/proto-loader';
const [trustDir, manifestPath, sealDir, auditPath, protoPath, ...wanted] = process.argv.slice(2);
const trustedKeys = await loadTrustedKeys(trustDir);
const policy = { trustedKeys };
const loaded = await loadVerifiedManifest(manifestPath, policy);
const service = loadSync(protoPath, { keepCase: true, defaults: true })['kv.KV'];
const audit = await openAuditLog(auditPath);
const replies = {};
try {
  for (const want of wanted) {
    const [plugin, version] = want.split('@');
    const running = await launchVerified({ manifestPath, plugin, ...(version ? { version } : {}), policy, cookie: { key: 'GATEHOUSE_KV_PLUGIN', value: 'd41f0b3c-kv' }, seal: { parentDir: sealDir }, audit });
    const kv = running.client(service);
    await kv.Put({ key: 'k', value: Buffer.from(want) });
    replies[want] = (await kv.Get({ key: 'k' })).value.toString();
    await running.kill();
  }
} catch (error) {
  console.log(JSON.stringify({ error: { code: error.code, message: error.message } }));
  process.exit(1);
} finally {
  await audit.close();
}
console.log(JSON.stringify({ entries: loaded.entries.map((e) => ({ name: e.name, version: e.version, package: e.package, files: e.files.length })), replies }));
`;

interface Fixture {
  project: ConsumerProject;
  pluginsDir: string;
  trustDir: string;
  sealDir: string;
}

let root: string;
let sealDir: string | undefined;
let fixture: Promise<Fixture> | undefined;

test.before(async () => {
  root = await makeRoot();
});
test.after.always(async () => {
  if (root) await rm(root, { recursive: true, force: true });
  if (sealDir) await rm(sealDir, { recursive: true, force: true });
});

/** The packed project, a plugins directory with the TypeScript package (and the Go plugin when built), signed. */
function setup(): Promise<Fixture> {
  fixture ??= (async () => {
    const project = await makeConsumerProject(root);
    const pluginsDir = join(root, 'plugins');
    const pkgDir = join(pluginsDir, 'kv-ts');
    await mkdir(pkgDir, { recursive: true, mode: 0o755 });
    await writeFile(join(pkgDir, 'package.json'), JSON.stringify({ name: 'kv-ts', version: '1.3.0', type: 'module', main: 'plugin.js' }));
    await writeFile(join(pkgDir, 'plugin.js'), (await transform(PLUGIN_TS, { loader: 'ts', format: 'esm', target: 'node20' })).code);
    await copyFile(join(repoRoot, 'examples/kv/kv.proto'), join(pkgDir, 'kv.proto'));
    await installIntoPluginPackage(project, pkgDir);
    if (goBinaries) {
      await copyFile(goBinaries.kvplugin, join(pluginsDir, 'kv-go'));
      await chmod(join(pluginsDir, 'kv-go'), 0o755);
    }
    await writeFile(join(project.dir, 'publish.mjs'), PUBLISH);
    await writeFile(join(project.dir, 'host.mjs'), HOST);
    const trustDir = join(root, 'trust');
    await node(project, 'publish.mjs', [pluginsDir, trustDir, goBinaries ? 'go' : '']);
    // Under the host-owned seal root: a seal under /tmp is refused (SECURITY.md V1, V11).
    sealDir = await mkdtemp(join(await prepareSealRoot(), 'consumer-test-'));
    return { project, pluginsDir, trustDir, sealDir: sealDir as string };
  })();
  return fixture;
}

async function node(project: ConsumerProject, script: string, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [join(project.dir, script), ...args], { cwd: project.dir, env: { PATH: '/usr/bin:/bin' } });
  return stdout;
}

async function host(f: Fixture, auditName: string, wanted: string[]): Promise<{ ok: boolean; result: Record<string, unknown>; audit: Record<string, unknown>[] }> {
  const auditPath = join(root, auditName);
  const args = [f.trustDir, join(f.pluginsDir, 'manifest.json'), f.sealDir, auditPath, join(repoRoot, 'examples/kv/kv.proto'), ...wanted];
  let stdout: string;
  let ok = true;
  try {
    stdout = await node(f.project, 'host.mjs', args);
  } catch (error) {
    ok = false;
    stdout = (error as { stdout: string }).stdout;
  }
  const audit = (await readFile(auditPath, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  return { ok, result: JSON.parse(stdout) as Record<string, unknown>, audit };
}

test.serial('the tarball holds the public entry points and their types, and no tests', async (t) => {
  const { project } = await setup();
  const listing = (await run(TAR_PATH, ['-tzf', project.tarball])).stdout;
  for (const file of ['package/dist/src/index.js', 'package/dist/src/index.d.ts', 'package/dist/src/plugin/index.js', 'package/dist/src/cli/main.js']) t.true(listing.includes(file), file);
  t.false(listing.includes('package/dist/test/'));
});

test.serial('a consumer loads keys, lists the signed entries, and runs the signed TypeScript package over mTLS, with the version chosen by range', async (t) => {
  const f = await setup();
  const { ok, result, audit } = await host(f, 'ts.jsonl', ['kv@^1']);
  t.true(ok, JSON.stringify(result));
  t.like(result, { replies: { 'kv@^1': 'ts:kv@^1' } });
  const entries = result.entries as { name: string; version?: string; package?: string; files: number }[];
  const kv = entries.find((entry) => entry.name === 'kv');
  t.like(kv, { version: '1.3.0', package: 'kv-ts' });
  t.true((kv?.files ?? 0) > 100, 'node_modules is listed file by file');
  t.like(audit.find((record) => record.type === 'verification'), { plugin: 'kv', version: '1.3.0', requested: '^1', reason: 'range', result: 'accepted' });
  t.regex(String(audit.find((record) => record.type === 'connected')?.peerCertificateSha256), /^[0-9a-f]{64}$/, 'mutual TLS with a pinned certificate');
  const launched = audit.find((record) => record.type === 'launch')?.argv as string[];
  t.true(launched.some((arg) => arg.startsWith(`file://${f.sealDir}`) && arg.endsWith('register.mjs')), 'module resolution confined to the sealed package');
});

test.serial('a Go plugin from the same signed manifest runs through launchVerified from the packed package', async (t) => {
  if (!goBinaries) {
    if (goRequired) t.fail('CI=true: Go interop binaries not built (node dist/test/interop/build-go.js)');
    else t.log('skipped: Go toolchain not found');
    t.pass();
    return;
  }
  const { ok, result } = await host(await setup(), 'go.jsonl', ['kv-go']);
  t.true(ok, JSON.stringify(result));
  t.like(result, { replies: { 'kv-go': 'kv-go' } });
});

test.serial('a version that is not signed fails naming what is available; a file changed deep in node_modules is refused naming it', async (t) => {
  const f = await setup();
  const missing = await host(f, 'pin.jsonl', ['kv@2.0.0']);
  t.false(missing.ok);
  t.like(missing.result, { error: { code: 'PLUGIN_VERSION_NOT_FOUND' } });
  t.regex(JSON.stringify(missing.result), /available: 1\.3\.0/);
  // Attack: a dependency of the signed package is edited after signing.
  const deep = join(f.pluginsDir, 'kv-ts/node_modules/@grpc/grpc-js/build/src/index.js');
  const original = await readFile(deep);
  await appendFile(deep, '\n// tampered\n');
  const tampered = await host(f, 'tampered.jsonl', ['kv@^1']).finally(() => writeFile(deep, original));
  t.false(tampered.ok);
  t.like(tampered.result, { error: { code: 'SIZE_MISMATCH' } });
  t.regex(JSON.stringify(tampered.result), /node_modules\/@grpc\/grpc-js\/build\/src\/index\.js/);
  t.like(tampered.audit.find((record) => record.type === 'refusal'), { plugin: 'kv', code: 'SIZE_MISMATCH' });
});

test.serial('the worked example in docs/plugins.md runs as written in the consumer project', async (t) => {
  const f = await setup();
  const docs = await readFile(join(repoRoot, 'docs/plugins.md'), 'utf8');
  const example = /<!-- example: host\.mjs -->\n```js\n([\s\S]*?)```/.exec(docs)?.[1];
  if (example === undefined) throw new Error('docs/plugins.md has no host.mjs example');
  await writeFile(join(f.project.dir, 'docs-host.mjs'), example);
  const stdout = await node(f.project, 'docs-host.mjs', [f.trustDir, join(f.pluginsDir, 'manifest.json'), join(repoRoot, 'examples/kv/kv.proto')]);
  t.regex(stdout, /^kv 1\.3\.0 \(\d+ files\)$/m);
  t.regex(stdout, /^running kv 1\.3\.0, sha256 [0-9a-f]{16}\.\.\., signed by [0-9A-F]{16}$/m);
  t.regex(stdout, /^ts:hello$/m);
});
