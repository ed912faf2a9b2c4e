import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { openAuditLog } from '../../src/audit/index.js';

// Compiled to dist/test/cli/: three levels up is the repository.
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const cli = join(repoRoot, 'dist/src/cli/main.js');
const MINISIGN = '/usr/bin/minisign';
const PRLIMIT = '/usr/bin/prlimit';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the gatehouse binary as a user would: node dist/src/cli/main.js ARGS, no shell. With
 * `fileSizeLimit`, under util-linux's prlimit: a write past that many bytes fails (EFBIG), as on a full disk.
 */
function gatehouse(args: readonly string[], fileSizeLimit?: number): Promise<Result> {
  const [file, ...command] = fileSizeLimit === undefined ? [process.execPath, cli, ...args] : [PRLIMIT, `--fsize=${fileSizeLimit}`, process.execPath, cli, ...args];
  return new Promise((resolve) => {
    execFile(file as string, command, { cwd: repoRoot, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

/** A private directory (0700, so the file-safety checks pass) removed when the test ends. */
async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-verify-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Release {
  plugins: string;
  keys: string;
  manifest: string;
  /** The secret key, kept outside the trusted-keys directory. */
  secretKey: string;
}

/** Two small `#!/bin/sh` plugins, a key pair (public half in keys/), and where the manifest goes. */
async function release(t: ExecutionContext): Promise<Release> {
  const dir = await tempDir(t);
  const plugins = join(dir, 'plugins');
  const keys = join(dir, 'keys');
  await mkdir(plugins, { mode: 0o755 });
  await mkdir(keys, { mode: 0o755 });
  for (const name of ['alpha', 'beta']) {
    await writeFile(join(plugins, name), `#!/bin/sh\necho ${name}\n`);
    await chmod(join(plugins, name), 0o755);
  }
  const keygen = await gatehouse(['keygen', '--out', join(dir, 'release')]);
  t.is(keygen.code, 0, keygen.stderr);
  await writeFile(join(keys, 'release.pub'), await readFile(join(dir, 'release.pub')));
  return { plugins, keys, manifest: join(dir, 'manifest.json'), secretKey: join(dir, 'release.key') };
}

async function createAndSign(t: ExecutionContext, r: Release, extra: readonly string[] = []): Promise<void> {
  const created = await gatehouse(['manifest', 'create', r.plugins, '--out', r.manifest, ...extra]);
  t.is(created.code, 0, created.stderr);
  const signed = await gatehouse(['manifest', 'sign', r.manifest, '--key', r.secretKey]);
  t.is(signed.code, 0, signed.stderr);
}

const verifyArgs = (r: Release): string[] => ['verify', '--manifest', r.manifest, '--trust', r.keys, r.plugins];

test('keygen writes a 0600 .key and a .pub, prints the key id but not the secret, and never overwrites', async (t) => {
  const dir = await tempDir(t);
  const prefix = join(dir, 'k');
  const result = await gatehouse(['keygen', '--out', prefix]);
  t.is(result.code, 0, result.stderr);
  t.is((await stat(`${prefix}.key`)).mode & 0o777, 0o600);
  const keyId = /^key id: ([0-9A-F]{16})$/m.exec(result.stdout)?.[1];
  t.truthy(keyId, result.stdout);
  t.true(result.stdout.includes(`${prefix}.pub`));
  const secretLine = (await readFile(`${prefix}.key`, 'utf8')).split('\n')[1] ?? '';
  t.false(result.stdout.includes(secretLine), 'the secret key is never printed');
  const before = await readFile(`${prefix}.key`);
  const again = await gatehouse(['keygen', '--out', prefix]);
  t.is(again.code, 1);
  t.regex(again.stderr, /^gatehouse keygen: INVALID_OPTIONS: .*already exists/);
  t.deepEqual(await readFile(`${prefix}.key`), before);
  t.is((await gatehouse(['keygen'])).code, 2);
});

test('keygen and manifest sign that fail part way (a full disk) leave no torn key or signature behind', async (t) => {
  const dir = await tempDir(t);
  const prefix = join(dir, 'k');
  // 100 bytes: the secret key file (~160 bytes) is cut short mid-write.
  const torn = await gatehouse(['keygen', '--out', prefix], 100);
  t.is(torn.code, 1, torn.stderr);
  t.regex(torn.stderr, /^gatehouse keygen: FILE_UNWRITABLE: .*k\.key: cannot be written \(EFBIG\)/);
  t.deepEqual(await readdir(dir), [], 'no half-written key file that a second keygen would refuse to replace');
  t.is((await gatehouse(['keygen', '--out', prefix])).code, 0);

  const r = await release(t);
  const created = await gatehouse(['manifest', 'create', r.plugins, '--out', r.manifest]);
  t.is(created.code, 0, created.stderr);
  const unsigned = await gatehouse(['manifest', 'sign', r.manifest, '--key', r.secretKey], 100);
  t.is(unsigned.code, 1, unsigned.stderr);
  t.regex(unsigned.stderr, /^gatehouse manifest: FILE_UNWRITABLE: .*manifest\.json\.minisig: cannot be written \(EFBIG\)/);
  t.false(existsSync(`${r.manifest}.minisig`), 'no torn signature that verify would read and sign would refuse to replace');
  const signed = await gatehouse(['manifest', 'sign', r.manifest, '--key', r.secretKey]);
  t.is(signed.code, 0, signed.stderr);
});

test('minisign -V accepts a manifest signature made with a keygen key', async (t) => {
  if (!existsSync(MINISIGN)) {
    if (process.env.CI === 'true') t.fail(`${MINISIGN} is missing; CI must install the minisign package`);
    else t.log(`skipped: ${MINISIGN} is not installed`);
    t.pass();
    return;
  }
  const r = await release(t);
  await createAndSign(t, r);
  const { stdout } = await promisify(execFile)(MINISIGN, ['-V', '-p', join(r.keys, 'release.pub'), '-m', r.manifest]);
  t.regex(stdout, /Trusted comment: timestamp:\d+\tgatehouse manifest version:1/);
});

test('manifest create, sign, verify: one ok line per plugin and exit 0; --json prints one object each', async (t) => {
  const r = await release(t);
  await createAndSign(t, r, ['--version', '3']);
  const manifest = JSON.parse(await readFile(r.manifest, 'utf8')) as { version: number; expires: string; plugins: { name: string; sha256: string }[] };
  t.is(manifest.version, 3);
  t.deepEqual(
    manifest.plugins.map((plugin) => plugin.name),
    ['alpha', 'beta'],
  );
  // The default expiry is 90 days out.
  t.true(Math.abs(Date.parse(manifest.expires) - Date.now() - 90 * 86_400_000) < 60_000);
  const result = await gatehouse(verifyArgs(r));
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, manifest.plugins.map((plugin) => `ok ${plugin.name} sha256=${plugin.sha256}\n`).join(''));
  const json = await gatehouse([...verifyArgs(r), '--json']);
  t.is(json.code, 0, json.stderr);
  t.like(JSON.parse(json.stdout.split('\n')[0] ?? ''), { name: 'alpha', ok: true, sha256: manifest.plugins[0]?.sha256 });
});

test('manifest create --from-sha256sums lists the files of a SHA256SUMS file', async (t) => {
  const r = await release(t);
  const alpha = await readFile(join(r.plugins, 'alpha'));
  const sums = join(r.plugins, '..', 'SHA256SUMS');
  await writeFile(sums, `${createHash('sha256').update(alpha).digest('hex')}  ./alpha\n`);
  const created = await gatehouse(['manifest', 'create', r.plugins, '--from-sha256sums', sums]);
  t.is(created.code, 0, created.stderr);
  const manifest = JSON.parse(created.stdout) as { plugins: { name: string; size: number }[] };
  t.deepEqual(manifest.plugins.map((plugin) => [plugin.name, plugin.size]), [['alpha', alpha.length]]);
  await writeFile(sums, `${'0'.repeat(64)}  alpha\n`);
  const mismatch = await gatehouse(['manifest', 'create', r.plugins, '--from-sha256sums', sums]);
  t.is(mismatch.code, 1);
  t.regex(mismatch.stderr, /^gatehouse manifest: DIGEST_MISMATCH: /);
});

test('manifest create --from-sha256sums refuses what --glob refuses: a file through a link out of DIR, another user\'s, one others can write', async (t) => {
  const r = await release(t);
  const outside = join(r.plugins, '..', 'outside');
  await mkdir(outside, { mode: 0o755 });
  await writeFile(join(outside, 's'), '#!/bin/sh\n');
  await chmod(join(outside, 's'), 0o755);
  await symlink('../outside', join(r.plugins, 'linkdir'));
  await chmod(join(r.plugins, 'beta'), 0o757);
  const cases: [string, RegExp][] = [
    ['linkdir/s', /^gatehouse manifest: FILE_SYMLINK_ESCAPES: .*linkdir\/s: resolves to .*outside\/s, outside /],
    ['beta', /^gatehouse manifest: FILE_WRITABLE_BY_OTHERS: .*beta: writable by group or others/],
  ];
  if (process.geteuid?.() === 0) {
    await chown(join(r.plugins, 'alpha'), 65534, 65534);
    cases.push(['alpha', /^gatehouse manifest: FILE_BAD_OWNER: .*alpha: owned by uid 65534/]);
  } else t.log('not root: another user\'s file is not tried');
  const sums = join(r.plugins, '..', 'SHA256SUMS');
  for (const [name, expected] of cases) {
    await writeFile(sums, `${createHash('sha256').update(await readFile(join(r.plugins, name))).digest('hex')}  ${name}\n`);
    for (const args of [['--from-sha256sums', sums], ['--glob', name]]) {
      const result = await gatehouse(['manifest', 'create', r.plugins, ...args]);
      t.is(result.code, 1, `${name} ${args[0]}: ${result.stderr}`);
      t.regex(result.stderr, expected, `${name} ${args[0]}`);
      t.is(result.stdout, '', `${name} ${args[0]}: no manifest`);
    }
  }
});

test('manifest create of a DIR that is not a directory, or with a --glob that matches nothing, exits 1 saying what to do and writes no manifest', async (t) => {
  const r = await release(t);
  const cases: [string[], RegExp][] = [
    [[join(r.plugins, 'alpha')], /^gatehouse manifest: FILE_NOT_FOUND: .*alpha: not a directory; give the directory that holds the plugins$/m],
    [[r.plugins, '--glob', '*.exe'], /^gatehouse manifest: FILE_NOT_FOUND: no file in .*plugins matches \*\.exe; check DIR and the patterns/m],
  ];
  for (const [args, expected] of cases) {
    const result = await gatehouse(['manifest', 'create', ...args, '--out', r.manifest]);
    t.is(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
    t.regex(result.stderr, expected, args.join(' '));
    t.false(existsSync(r.manifest), 'no manifest written');
  }
});

test('manifest sign and create --from-sha256sums refuse a FIFO at once, and read no more than a manifest may hold', async (t) => {
  const r = await release(t);
  const fifo = join(r.plugins, '..', 'fifo');
  await promisify(execFile)('mkfifo', [fifo]);
  const big = join(r.plugins, '..', 'big.json');
  await writeFile(big, Buffer.alloc((1 << 20) + 1, ' '));
  const inputs: [string, RegExp][] = [
    [fifo, /^gatehouse manifest: FILE_NOT_REGULAR: .*fifo: not a regular file$/m],
    [big, /^gatehouse manifest: MANIFEST_TOO_LARGE: .*big\.json: larger than 1048576 bytes$/m],
  ];
  for (const [file, expected] of inputs) {
    for (const args of [['manifest', 'sign', file, '--key', r.secretKey], ['manifest', 'create', r.plugins, '--from-sha256sums', file]]) {
      const result = await gatehouse(args);
      t.is(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
      t.regex(result.stderr, expected, args.join(' '));
    }
  }
  t.deepEqual((await readdir(join(r.plugins, '..'))).filter((name) => name.endsWith('.minisig')), [], 'nothing signed');
});

test('verify: a plugin with one byte changed is a FAIL line and exit 1', async (t) => {
  const r = await release(t);
  await createAndSign(t, r);
  const beta = join(r.plugins, 'beta');
  const bytes = await readFile(beta);
  bytes[bytes.length - 2] = (bytes[bytes.length - 2] ?? 0) ^ 1;
  await writeFile(beta, bytes);
  const result = await gatehouse(verifyArgs(r));
  t.is(result.code, 1);
  const lines = result.stdout.split('\n');
  t.regex(lines[0] ?? '', /^ok alpha sha256=/);
  t.regex(lines[1] ?? '', /^FAIL beta: DIGEST_MISMATCH: /);
});

test('verify: a manifest signed by an untrusted key, or by fewer keys than --threshold, exits 1', async (t) => {
  const r = await release(t);
  await createAndSign(t, r);
  const other = await tempDir(t);
  t.is((await gatehouse(['keygen', '--out', join(other, 'other')])).code, 0);
  await rm(join(other, 'other.key'));
  const untrusted = await gatehouse(['verify', '--manifest', r.manifest, '--trust', other, r.plugins]);
  t.is(untrusted.code, 1);
  t.is(untrusted.stdout, '');
  t.regex(untrusted.stderr, /^gatehouse verify: manifest: SIGNATURE_UNTRUSTED: /);
  // Two trusted keys, one signature: a threshold of 2 is not met.
  await writeFile(join(r.keys, 'other.pub'), await readFile(join(other, 'other.pub')));
  const underSigned = await gatehouse([...verifyArgs(r), '--threshold', '2']);
  t.is(underSigned.code, 1);
  t.regex(underSigned.stderr, /^gatehouse verify: manifest: THRESHOLD_NOT_MET: manifest signed by 1 of the 2/);
});

test('verify: an expired manifest exits 1 and says to sign a new version', async (t) => {
  const r = await release(t);
  t.is((await gatehouse(['manifest', 'create', r.plugins, '--out', r.manifest])).code, 0);
  // manifest create refuses a past --expires, so the old manifest is written by hand, as a leftover would be.
  await writeFile(r.manifest, (await readFile(r.manifest, 'utf8')).replace(/"expires": "[^"]*"/, '"expires": "2020-01-01T00:00:00Z"'));
  t.is((await gatehouse(['manifest', 'sign', r.manifest, '--key', r.secretKey])).code, 0);
  const result = await gatehouse(verifyArgs(r));
  t.is(result.code, 1);
  t.regex(result.stderr, /^gatehouse verify: manifest: MANIFEST_EXPIRED: .*publish a new version and sign it \(gatehouse manifest create --version 2/);
});

test('manifest create: an --expires in the past is refused as a usage error', async (t) => {
  const r = await release(t);
  const result = await gatehouse(['manifest', 'create', r.plugins, '--out', r.manifest, '--expires', '2020-01-01T00:00:00Z']);
  t.is(result.code, 2);
  t.regex(result.stderr, /^gatehouse manifest: --expires 2020-01-01T00:00:00Z is in the past/);
  t.false(existsSync(r.manifest));
});

test('verify: an unsigned manifest says no .minisig was found, and how to sign it', async (t) => {
  const r = await release(t);
  t.is((await gatehouse(['manifest', 'create', r.plugins, '--out', r.manifest])).code, 0);
  const result = await gatehouse(verifyArgs(r));
  t.is(result.code, 1);
  t.regex(result.stderr, /^gatehouse verify: manifest: THRESHOLD_NOT_MET: .*manifest\.json: not signed: no manifest\.json\.minisig .*gatehouse manifest sign/);
});

test('verify: an empty or missing trust directory says so, not that the manifest is missing', async (t) => {
  const r = await release(t);
  await createAndSign(t, r);
  await rm(join(r.keys, 'release.pub'));
  const empty = await gatehouse(verifyArgs(r));
  t.is(empty.code, 1);
  t.regex(empty.stderr, /no trusted keys: the trust directory holds no \*\.pub file/);
  await rm(r.keys, { recursive: true });
  const missing = await gatehouse(verifyArgs(r));
  t.is(missing.code, 1);
  t.regex(missing.stderr, /FILE_NOT_FOUND: trust directory .*keys does not exist/);
});

test('verify --glob: the manifest and its signatures among the plugins are not unlisted plugins', async (t) => {
  const r = await release(t);
  const manifest = join(r.plugins, 'manifest.json');
  t.is((await gatehouse(['manifest', 'create', r.plugins, '--out', manifest])).code, 0);
  t.is((await gatehouse(['manifest', 'sign', manifest, '--key', r.secretKey])).code, 0);
  const result = await gatehouse(['verify', '--manifest', manifest, '--trust', r.keys, '--glob', '*', r.plugins]);
  t.is(result.code, 0, result.stdout + result.stderr);
  t.false(/PLUGIN_NOT_IN_MANIFEST/.test(result.stdout + result.stderr));
});

test('verify: a manifest edited after signing fails; edited to an expiry in the past and re-signed, it is expired', async (t) => {
  const r = await release(t);
  await createAndSign(t, r);
  const text = await readFile(r.manifest, 'utf8');
  await writeFile(r.manifest, text.replace(/"expires": "[^"]*"/, '"expires": "2020-01-01T00:00:00Z"'));
  const edited = await gatehouse(verifyArgs(r));
  t.is(edited.code, 1);
  t.regex(edited.stderr, /^gatehouse verify: manifest: SIGNATURE_INVALID: .*changed after it was signed.*sign the manifest again/);
  await rm(`${r.manifest}.minisig`);
  t.is((await gatehouse(['manifest', 'sign', r.manifest, '--key', r.secretKey])).code, 0);
  const resigned = await gatehouse(verifyArgs(r));
  t.is(resigned.code, 1);
  t.regex(resigned.stderr, /^gatehouse verify: manifest: MANIFEST_EXPIRED: manifest version 1 expired at 2020-01-01T00:00:00Z/);
});

test('verify --state: after version 2 is accepted, version 1 is a rollback and exits 1', async (t) => {
  const r = await release(t);
  const state = join(r.keys, '..', 'state.json');
  await createAndSign(t, r, ['--version', '2']);
  t.is((await gatehouse([...verifyArgs(r), '--state', state])).code, 0);
  // An older manifest, validly signed: exactly what an attacker replaying a past release would have.
  await rm(`${r.manifest}.minisig`);
  await createAndSign(t, r, ['--version', '1']);
  const rollback = await gatehouse([...verifyArgs(r), '--state', state]);
  t.is(rollback.code, 1);
  t.regex(rollback.stderr, /^gatehouse verify: manifest: MANIFEST_ROLLBACK: manifest version 1 is older than version 2/);
  t.deepEqual(JSON.parse(await readFile(state, 'utf8')), { highestVersion: 2 });
});

test('manifest sign: signing again with a key replaces its signature; another key\'s goes to MANIFEST.<KEYID>.minisig', async (t) => {
  const r = await release(t);
  await createAndSign(t, r);
  const again = await gatehouse(['manifest', 'sign', r.manifest, '--key', r.secretKey]);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /manifest\.json\.minisig \(replaced this key's earlier signature\)/);
  const dir = join(r.keys, '..');
  const signatures = async (): Promise<string[]> => (await readdir(dir)).filter((name) => name.endsWith('.minisig')).sort();
  t.deepEqual(await signatures(), ['manifest.json.minisig'], 'no second file by the same key');
  t.is((await gatehouse(['keygen', '--out', join(dir, 'second')])).code, 0);
  const first = await readFile(`${r.manifest}.minisig`, 'utf8');
  for (let i = 0; i < 2; i++) t.is((await gatehouse(['manifest', 'sign', r.manifest, '--key', join(dir, 'second.key')])).code, 0);
  t.is((await signatures()).length, 2, "the second key's signature, written once and then replaced");
  t.is(await readFile(`${r.manifest}.minisig`, 'utf8'), first, "the first key's signature is never overwritten by another key");
});

test('usage errors exit 2 with one line', async (t) => {
  const cases = [
    ['verify'],
    ['verify', '--manifest', 'm.json'],
    ['verify', '--manifest', 'm.json', '--trust', 'k', '--threshold', 'two'],
    ['verify', '--manifest', 'm.json', '--trust', 'k', 'a', 'b'],
    ['manifest'],
    ['manifest', 'create'],
    ['manifest', 'publish', 'x'],
    ['manifest', 'create', 'dir', '--expires', '2030-02-30'],
    ['manifest', 'create', 'dir', '--expires', '2030-01-01T00:00:00'],
    ['manifest', 'create', 'dir', '--expires', '2030-01-01', '--expires-in', '3'],
    ['manifest', 'sign', 'm.json'],
    ['keygen', '--out', 'a', '--out', 'b'],
  ];
  for (const args of cases) {
    const result = await gatehouse(args);
    t.is(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    t.is(result.stderr.split('\n').filter(Boolean).length, 1, args.join(' '));
    t.true(result.stderr.startsWith(`gatehouse ${args[0] ?? ''}: `), result.stderr);
  }
});

test('audit verify is reachable through gatehouse', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'audit.log');
  const log = await openAuditLog(path);
  log.record({ type: 'kill', plugin: 'kv', pid: 7, method: 'SIGTERM' });
  await log.close();
  const result = await gatehouse(['audit', 'verify', path]);
  t.like(result, { code: 0, stderr: '' });
  t.regex(result.stdout, /^ok: 2 records\nlog id: [0-9a-f]{32}\nlast hash: [0-9a-f]{64}\nsealed: no/);
});
