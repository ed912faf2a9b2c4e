// `gatehouse-secrets init` makes a whole server home or none: a home left half-made would refuse every later init.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { loadConfig } from '../../examples/secrets-server/config.js';

const MAIN = fileURLToPath(new URL('../../examples/secrets-server/main.js', import.meta.url));

/** Runs `init`, with `fileSizeLimit` under util-linux's prlimit: a write past it fails (EFBIG), as on a full disk. */
function init(home: string, fileSizeLimit?: number): Promise<{ code: number; stdout: string; stderr: string }> {
  const args = [MAIN, 'init', '--home', home, '--manifest', join(home, '..', 'manifest.json'), '--keys', join(home, '..', 'keys'), '--port', '0'];
  const [file, ...rest] = fileSizeLimit === undefined ? [process.execPath, ...args] : ['/usr/bin/prlimit', `--fsize=${fileSizeLimit}`, process.execPath, ...args];
  return new Promise((resolve) => {
    execFile(file as string, rest, { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

test('init: a write cut short (a full disk) leaves no torn config behind, and init then succeeds', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-secrets-init-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const home = join(dir, 'home');
  const torn = await init(home, 100);
  t.is(torn.code, 1, torn.stderr);
  t.regex(torn.stderr, /^gatehouse-secrets init: .*config\.json: cannot be written \(EFBIG\)/);
  t.deepEqual(await readdir(home), ['data'], 'no torn config: only the empty data directory, which the next init reuses');
  const done = await init(home);
  t.is(done.code, 0, done.stderr);
  t.regex(done.stdout, /root token \(shown once, stored only hashed\): /);
  t.deepEqual((await readdir(home)).sort(), ['audit-hmac.key', 'config.json', 'data']);
  const again = await init(home);
  t.is(again.code, 1, 'an existing home is never overwritten');
});

test('a config.json that is not JSON, or whose limits are not positive integers or not known, stops the start saying which', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'gatehouse-config-test-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  const valid = { rootTokenSha256: 'a'.repeat(64), release: { manifest: 'm' }, sealDir: '/var/cache/x', limits: {} };
  const cases: Array<[string, RegExp]> = [
    ['{"rootTokenSha256": ', /config\.json is not valid JSON/],
    [JSON.stringify({ ...valid, limits: { headersTimeoutMs: '2000' } }), /limits\.headersTimeoutMs must be a positive integer of at most 2147483647 \(ms\), got "2000"/],
    [JSON.stringify({ ...valid, limits: { maxConnections: 0 } }), /limits\.maxConnections must be a positive integer, got 0/],
    // A timer past 2^31 - 1 ms fires at once: an engine retired 1 ms after every call.
    [JSON.stringify({ ...valid, limits: { idleTimeoutMs: 3_000_000_000 } }), /limits\.idleTimeoutMs must be a positive integer of at most 2147483647 \(ms\), got 3000000000/],
    [JSON.stringify({ ...valid, limits: { headersTimeoutMs: 120_000 } }), /limits\.headersTimeoutMs must be at most 60000/],
    // A misspelt limit would leave the default in force while the operator believes otherwise.
    [JSON.stringify({ ...valid, limits: { maxConnection: 16 } }), /limits\.maxConnection is not a limit this server knows \(known: .*maxConnections/],
  ];
  for (const [text, message] of cases) {
    await writeFile(join(home, 'config.json'), text);
    const error = await t.throwsAsync(loadConfig(home));
    t.like(error, { code: 'invalid_config' });
    t.regex(error?.message ?? '', message);
  }
  await writeFile(join(home, 'config.json'), JSON.stringify({ ...valid, limits: { maxConnections: 16 } }));
  t.like((await loadConfig(home)).limits, { maxConnections: 16, headersTimeoutMs: 2000 });
});

test('gatehouse-secrets: an unknown option, --help included, is a usage error (exit 2) that names it, not a stack trace', async (t) => {
  const run = (...args: string[]) =>
    new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [MAIN, ...args], { timeout: 30_000 }, (error, _stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stderr }));
    });
  for (const args of [['init', '--help'], ['serve', '--hme', '/x']]) {
    const { code, stderr } = await run(...args);
    t.is(code, 2, stderr);
    t.regex(stderr, /^gatehouse-secrets: .*(--help|--hme).*\nusage: gatehouse-secrets init\|serve\|release/);
    t.notRegex(stderr, /\n\s+at /, 'no stack trace');
  }
});
