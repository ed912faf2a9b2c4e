// `gatehouse call` without --proto: methods found through gRPC server reflection, served by grpc-go's
// reflection package in the Go fixture and by gatehouse's SDK, and a clear failure when it is absent.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { bundlePlugin } from '../../src/bundle/bundle.js';
import { goTest } from '../interop/go-binaries.js';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const cli = join(repoRoot, 'dist/src/cli/main.js');
const KV_COOKIE = 'GATEHOUSE_KV_PLUGIN=d41f0b3c-kv';
const NOTES_COOKIE = 'GATEHOUSE_NOTES_PLUGIN=5c1e-notes';
const script = (path: string): string[] => [process.execPath, join(repoRoot, 'dist', path)];

function call(args: readonly string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, 'call', ...args], { cwd: repoRoot, timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin);
  });
}

const kvScript = '{"method":"kv.KV/Put","request":{"key":"k","value":"aGk="}}\n{"method":"kv.KV/Get","request":{"key":"k"}}\n';

test('without --proto, call reads the methods from a gatehouse plugin (proto-loader definitions)', async (t) => {
  const result = await call(['--cookie', KV_COOKIE, '--script', '-', '--', ...script('examples/kv/plugin.js')], kvScript);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(result.stdout.trim().split('\n'), ['{}', '{"value":"aGk="}']);
});

test('without --proto, call reads the methods from a gatehouse plugin (protobuf-es), server streaming included', async (t) => {
  const notes = '{"method":"notes.Notes/Add","request":{"text":"hi","stars":2}}\n{"method":"notes.Notes/List","request":{"limit":5}}\n';
  const result = await call(['--cookie', NOTES_COOKIE, '--script', '-', '--', ...script('examples/typed/protobuf-es-plugin.js')], notes);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(result.stdout.trim().split('\n'), ['{"id":"n1"}', '{"id":"n1","text":"hi","stars":2}']);
});

test('without --proto, call reads the methods from the recommended form (ts-proto codecs, bundled, with its descriptor set)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-call-precompiled-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bundle = join(dir, 'plugin.mjs');
  await bundlePlugin({ entry: join(repoRoot, 'dist/examples/kv-precompiled/plugin.js'), out: bundle });
  const result = await call(['--cookie', KV_COOKIE, '--script', '-', '--', process.execPath, bundle], kvScript);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(result.stdout.trim().split('\n'), ['{}', '{"value":"aGk="}']);
});

test('a plugin whose definitions carry no descriptors (ts-proto) is reported as such, with --proto as the way out', async (t) => {
  const result = await call(['--cookie', NOTES_COOKIE, '--method', 'notes.Notes/Add', '--', ...script('examples/typed/ts-proto-plugin.js')]);
  t.is(result.code, 1);
  t.regex(result.stderr, /serves gRPC reflection but described none of its services .*without descriptors.*: pass --proto FILE/);
});

goTest("without --proto, call reads the methods from grpc-go's reflection service in a go-plugin plugin", async (t, go) => {
  const result = await call(['--cookie', KV_COOKIE, '--script', '-', '--', go.kvplugin, '-reflection'], kvScript);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(result.stdout.trim().split('\n'), ['{}', '{"value":"aGk="}']);
});

goTest('a plugin without reflection is told apart, and --proto named', async (t, go) => {
  const result = await call(['--cookie', KV_COOKIE, '--method', 'kv.KV/Get', '--data', '{"key":"k"}', '--', go.kvplugin]);
  t.is(result.code, 1);
  t.regex(result.stderr, /gatehouse call: the plugin does not serve gRPC reflection \(grpc\.reflection\.v1alpha\.ServerReflection or grpc\.reflection\.v1\.ServerReflection\): pass --proto FILE/);
});
