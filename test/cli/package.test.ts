// The CLI path for TypeScript plugins: bundle, list as packages with versions, sign, verify, and call by range.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/paths.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const KV_PROTO = join(repoRoot, 'examples/kv/kv.proto');

/** A plugin that answers Get with its own package version, read from package.json next to it at run time. */
const PLUGIN_TS = `import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadSync } from ${JSON.stringify(join(repoRoot, 'node_modules/@grpc/proto-loader/build/src/index.js'))};
import { serve } from ${JSON.stringify(join(repoRoot, 'dist/src/plugin/index.js'))};

const here = (name: string): URL => new URL(name, import.meta.url);
const version: string = JSON.parse(readFileSync(here('./package.json'), 'utf8')).version;
const kv = loadSync(fileURLToPath(here('./kv.proto')), { keepCase: true, defaults: true });
await serve({
  cookie: { key: 'GATEHOUSE_KV_PLUGIN', value: 'd41f0b3c-kv' },
  versions: { 1: [{ definition: kv['kv.KV'] as never, implementation: {
    Get: (_call: unknown, callback: (error: null, reply: object) => void) => callback(null, { value: Buffer.from(version) }),
    Put: (_call: unknown, callback: (error: null, reply: object) => void) => callback(null, {}),
  } }] },
});
`;

function gatehouse(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { cwd: repoRoot, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-package-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('bundle, manifest create --package (two versions), sign, verify, and call --plugin NAME@RANGE run the highest signed match', async (t) => {
  const dir = await tempDir(t);
  const plugins = join(dir, 'plugins');
  await writeFile(join(dir, 'plugin.ts'), PLUGIN_TS);
  for (const [sub, version] of [
    ['kv-1', '1.4.0'],
    ['kv-2', '2.1.0'],
  ] as const) {
    await mkdir(join(plugins, sub), { recursive: true, mode: 0o755 });
    await writeFile(join(plugins, sub, 'package.json'), JSON.stringify({ name: 'kv', version, type: 'module', main: 'plugin.js' }));
    await copyFile(KV_PROTO, join(plugins, sub, 'kv.proto'));
  }
  const bundled = await gatehouse(['bundle', join(dir, 'plugin.ts'), '--out', join(plugins, 'kv-1/plugin.js')]);
  t.is(bundled.code, 0, bundled.stderr);
  t.regex(bundled.stdout, /^bundled \d+ modules into .*plugin\.js \(\d+ bytes\), (?:no tsconfig\.json|tsconfig \S+)$/m);
  t.is(bundled.stderr, '', 'package.json says "type": "module": no warning');
  await copyFile(join(plugins, 'kv-1/plugin.js'), join(plugins, 'kv-2/plugin.js'));

  const manifest = join(plugins, 'manifest.json');
  const created = await gatehouse(['manifest', 'create', plugins, '--package', 'kv=kv-1', '--package', 'kv=kv-2', '--out', manifest]);
  t.is(created.code, 0, created.stderr);
  t.is((await gatehouse(['keygen', '--out', join(dir, 'signer')])).code, 0);
  await mkdir(join(dir, 'keys'), { mode: 0o755 });
  await copyFile(join(dir, 'signer.pub'), join(dir, 'keys/signer.pub'));
  t.is((await gatehouse(['manifest', 'sign', manifest, '--key', join(dir, 'signer.key')])).code, 0);
  const trust = ['--manifest', manifest, '--trust', join(dir, 'keys')];
  const verified = await gatehouse(['verify', ...trust]);
  t.is(verified.code, 0, verified.stdout + verified.stderr);

  const call = (plugin: string) =>
    gatehouse(['call', ...trust, '--plugin', plugin, '--cookie', 'GATEHOUSE_KV_PLUGIN=d41f0b3c-kv', '--proto', KV_PROTO, '--method', 'kv.KV/Get', '--data', '{"key":"x"}']);
  const versionOf = (stdout: string): string => Buffer.from((JSON.parse(stdout) as { value: string }).value, 'base64').toString();
  const one = await call('kv@^1');
  t.is(one.code, 0, one.stderr);
  t.is(versionOf(one.stdout), '1.4.0');
  const newest = await call('kv');
  t.is(versionOf(newest.stdout), '2.1.0');
  const pinned = await call('kv@2.1.0');
  t.is(versionOf(pinned.stdout), '2.1.0');
  const none = await call('kv@^3');
  t.is(none.code, 1);
  t.regex(none.stderr, /kv@\^3.*available: 2\.1\.0, 1\.4\.0/);

  // Attack: a module planted in a signed package after signing.
  await writeFile(join(plugins, 'kv-1/extra.js'), 'process.exit(3);\n');
  const planted = await gatehouse(['verify', ...trust]);
  t.is(planted.code, 1);
  t.regex(planted.stdout + planted.stderr, /kv-1\/extra\.js/);
  t.is((await call('kv@^1')).code, 1);
});

test('manifest create --package usage errors exit 2', async (t) => {
  const dir = await tempDir(t);
  for (const args of [
    ['--package', 'nosubdir'],
    ['--package', 'a=x', '--package', 'b=y', '--entry', 'main.js'],
    ['--interpreter', '/usr/bin/node'],
    ['--package', 'a=x', '--from-sha256sums', join(dir, 'SUMS')],
  ]) {
    const result = await gatehouse(['manifest', 'create', dir, ...args]);
    t.is(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
  }
});
