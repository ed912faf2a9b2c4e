// gatehouse release → install → verify --lock → install --rollback, as a publisher and a host run them.
import test from 'ava';
import { execFile } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, rm, writeFile, chmod, copyFile, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processStartTime } from '../../src/process-identity.js';
import { repoRoot } from '../helpers/paths.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');

function gatehouse(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { cwd: repoRoot, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

test('release, install, verify --lock, a second release, install --rollback; a tampered install fails verify --lock', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-install-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.is((await gatehouse(['keygen', '--out', join(dir, 'signer')])).code, 0);
  await mkdir(join(dir, 'keys'), { mode: 0o755 });
  await copyFile(join(dir, 'signer.pub'), join(dir, 'keys/signer.pub'));
  const into = join(dir, 'installed');
  const publish = async (version: number) => {
    const src = join(dir, `src-${version}`);
    await mkdir(src, { mode: 0o755 });
    await writeFile(join(src, 'plugin'), `#!/bin/sh\necho ${version}\n`);
    await chmod(join(src, 'plugin'), 0o755);
    t.is((await gatehouse(['manifest', 'create', src, '--glob', 'plugin', '--version', String(version), '--out', join(src, 'manifest.json')])).code, 0);
    const out = join(dir, `release-${version}.tar.gz`);
    const made = await gatehouse(['release', src, '--key', join(dir, 'signer.key'), '--out', out]);
    t.is(made.code, 0, made.stderr);
    t.regex(made.stdout, /release .*: 3 files, sha256=[0-9a-f]{64}/);
    return out;
  };
  const install = (...args: string[]) => gatehouse(['install', ...args, '--trust', join(dir, 'keys'), '--into', into]);
  const one = await install(await publish(1));
  t.is(one.code, 0, one.stderr);
  t.regex(one.stdout, /installed manifest version 1 \(1 plugins\)/);
  const locked = await gatehouse(['verify', '--lock', `${into}.lock.json`, into]);
  t.is(locked.code, 0, locked.stderr);
  t.regex(locked.stdout, /^ok plugin tree=[0-9a-f]{64}$/m);
  // A lock file others can write is refused by verify --lock as by install: whoever can write it says which release is right.
  await chmod(`${into}.lock.json`, 0o666);
  const shared = await gatehouse(['verify', '--lock', `${into}.lock.json`, into]);
  t.is(shared.code, 1, shared.stderr);
  t.regex(shared.stderr, /^gatehouse verify: FILE_WRITABLE_BY_OTHERS: .*installed\.lock\.json: writable by group or others/);
  await chmod(`${into}.lock.json`, 0o644);
  t.is((await install(await publish(2))).code, 0);
  const back = await install('--rollback');
  t.is(back.code, 0, back.stderr);
  t.regex(back.stdout, /rolled back to manifest version 1/);
  const older = await install(join(dir, 'release-1.tar.gz'));
  t.is(older.code, 1);
  t.regex(older.stderr, /MANIFEST_ROLLBACK/);
  await appendFile(join(into, 'plugin'), '# changed\n');
  const tampered = await gatehouse(['verify', '--lock', `${into}.lock.json`, into]);
  t.is(tampered.code, 1);
  t.regex(tampered.stderr, /SIZE_MISMATCH|DIGEST_MISMATCH/);
  t.is((await gatehouse(['install', '--trust', join(dir, 'keys')])).code, 2);
});

test('install while another install holds PLUGINS_DIR.lck: exit 1 with INSTALL_LOCKED, saying what to do, and nothing installed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-install-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.is((await gatehouse(['keygen', '--out', join(dir, 'signer')])).code, 0);
  await mkdir(join(dir, 'keys'), { mode: 0o755 });
  await copyFile(join(dir, 'signer.pub'), join(dir, 'keys/signer.pub'));
  const src = join(dir, 'src');
  await mkdir(src, { mode: 0o755 });
  await writeFile(join(src, 'plugin'), '#!/bin/sh\necho 1\n', { mode: 0o755 });
  t.is((await gatehouse(['manifest', 'create', src, '--glob', 'plugin', '--version', '1', '--out', join(src, 'manifest.json')])).code, 0);
  t.is((await gatehouse(['release', src, '--key', join(dir, 'signer.key'), '--out', join(dir, 'r.tar.gz')])).code, 0);
  const into = join(dir, 'installed');
  // This test's own process, running, holds it.
  await writeFile(`${into}.lck`, `${process.pid} ${await processStartTime(process.pid)}\n`);
  const refused = await gatehouse(['install', join(dir, 'r.tar.gz'), '--trust', join(dir, 'keys'), '--into', into]);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /INSTALL_LOCKED: .*another install or rollback is running \(pid \d+\); wait for it to finish and try again, or if none is running, remove .*installed\.lck/);
  await t.throwsAsync(lstat(into), { code: 'ENOENT' });
});
