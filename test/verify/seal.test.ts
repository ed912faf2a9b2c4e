import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import { readdir, readFile, realpath, stat, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sha256File } from '../../src/verify/hash.js';
import { sealPlugin } from '../../src/verify/seal.js';
import { sealRootDir, tempDir, writeFileWithMode } from '../discover/temp-dir.js';
import { requireCheckoutReachable, requireRoot } from '../hostile/requires.js';

const run = promisify(execFile);
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const SCRIPT = '#!/bin/sh\necho "sealed:$0:$*"\n';
const NOBODY = 65534;
const sealModule = fileURLToPath(new URL('../../src/verify/seal.js', import.meta.url));

test('a sealed plugin is a 0500 copy in a fresh 0700 directory, and running it runs the verified bytes', async (t) => {
  const pluginDir = await tempDir(t);
  const parentDir = await sealRootDir(t);
  await writeFileWithMode(pluginDir, 'plugin', SCRIPT, 0o755);
  const sealed = await sealPlugin({ name: 'p', path: 'plugin', sha256: sha256(SCRIPT), size: SCRIPT.length, args: ['--serve'] }, pluginDir, { parentDir });
  t.is((await stat(sealed.dir)).mode & 0o777, 0o700);
  t.is((await stat(sealed.path)).mode & 0o777, 0o500);
  t.is(await readFile(sealed.path, 'utf8'), SCRIPT);
  t.is(sealed.command, sealed.path);
  t.deepEqual(sealed.args, ['--serve']);
  t.deepEqual(sealed.files, [{ source: join(pluginDir, 'plugin'), path: sealed.path, sha256: sha256(SCRIPT), size: SCRIPT.length }]);
  const { stdout } = await run(sealed.command, sealed.args);
  t.is(stdout, `sealed:${sealed.path}:--serve\n`);
  await sealed[Symbol.asyncDispose]();
  t.deepEqual(await readdir(parentDir), []);
});

test('a plugin whose bytes differ from the manifest is DIGEST_MISMATCH, and no copy is left behind', async (t) => {
  const pluginDir = await tempDir(t);
  const parentDir = await sealRootDir(t);
  await writeFileWithMode(pluginDir, 'plugin', SCRIPT.replace('sealed', 'SEALED'), 0o755);
  await t.throwsAsync(sealPlugin({ name: 'p', path: 'plugin', sha256: sha256(SCRIPT), size: SCRIPT.length }, pluginDir, { parentDir }), {
    code: 'DIGEST_MISMATCH',
  });
  t.deepEqual(await readdir(parentDir), []);
});

test('a plugin longer or shorter than the manifest says is SIZE_MISMATCH', async (t) => {
  const pluginDir = await tempDir(t);
  const parentDir = await sealRootDir(t);
  await writeFileWithMode(pluginDir, 'plugin', SCRIPT, 0o755);
  for (const size of [SCRIPT.length - 1, SCRIPT.length + 1]) {
    await t.throwsAsync(sealPlugin({ name: 'p', path: 'plugin', sha256: sha256(SCRIPT), size }, pluginDir, { parentDir }), { code: 'SIZE_MISMATCH' });
  }
  t.deepEqual(await readdir(parentDir), []);
});

test('without a size (gatehouse call --sha256) the digest alone decides', async (t) => {
  const pluginDir = await tempDir(t);
  await writeFileWithMode(pluginDir, 'plugin', SCRIPT, 0o755);
  await using sealed = await sealPlugin({ name: 'p', path: 'plugin', sha256: sha256(SCRIPT) }, pluginDir);
  t.is(sealed.sha256, sha256(SCRIPT));
  await t.throwsAsync(sealPlugin({ name: 'p', path: 'plugin', sha256: sha256('other') }, pluginDir), { code: 'DIGEST_MISMATCH' });
});

test('a symbolic link in place of the plugin is refused even when it points at the signed bytes', async (t) => {
  const pluginDir = await tempDir(t);
  await writeFileWithMode(pluginDir, 'real', SCRIPT, 0o755);
  await symlink(join(pluginDir, 'real'), join(pluginDir, 'plugin'));
  await t.throwsAsync(sealPlugin({ name: 'p', path: 'plugin', sha256: sha256(SCRIPT), size: SCRIPT.length }, pluginDir), { code: 'FILE_NOT_REGULAR' });
});

test('a path that would be sealed outside the private directory is SEAL_FAILED', async (t) => {
  const pluginDir = await tempDir(t);
  await writeFileWithMode(pluginDir, 'plugin', SCRIPT, 0o755);
  await t.throwsAsync(
    sealPlugin({ name: 'p', path: 'plugin', sha256: sha256(SCRIPT), files: [{ path: '../../escape', sha256: sha256(''), size: 0 }] }, pluginDir),
    { code: 'SEAL_FAILED' },
  );
});

test('an interpreted plugin seals its script and modules in their layout, and runs them with the system interpreter', async (t) => {
  const pluginDir = await tempDir(t);
  const main = '. "$(dirname "$0")/lib/helper.sh"\nhelper "$@"\n';
  const helper = 'helper() { echo "helper:$1"; }\n';
  await writeFileWithMode(pluginDir, 'main.sh', main, 0o644);
  await writeFileWithMode(pluginDir, 'lib/helper.sh', helper, 0o644);
  await using sealed = await sealPlugin(
    {
      name: 'sh-plugin',
      path: 'main.sh',
      sha256: sha256(main),
      size: main.length,
      args: ['x'],
      interpreter: { path: '/bin/sh' },
      files: [{ path: 'lib/helper.sh', sha256: sha256(helper), size: helper.length }],
    },
    pluginDir,
  );
  t.is(sealed.command, '/bin/sh');
  t.deepEqual(sealed.args, [sealed.path, 'x']);
  t.is((await stat(sealed.path)).mode & 0o777, 0o400);
  t.is(await readFile(join(sealed.dir, 'plugin/lib/helper.sh'), 'utf8'), helper);
  t.is((await run(sealed.command, sealed.args)).stdout, 'helper:x\n');
});

test('a module of an interpreted plugin that differs from the manifest is DIGEST_MISMATCH', async (t) => {
  const pluginDir = await tempDir(t);
  await writeFileWithMode(pluginDir, 'main.sh', 'echo hi\n', 0o644);
  await writeFileWithMode(pluginDir, 'lib.sh', 'tampered\n', 0o644);
  await t.throwsAsync(
    sealPlugin(
      { name: 'p', path: 'main.sh', sha256: sha256('echo hi\n'), size: 8, interpreter: { path: '/bin/sh' }, files: [{ path: 'lib.sh', sha256: sha256('ok\n'), size: 9 }] },
      pluginDir,
    ),
    { code: 'DIGEST_MISMATCH' },
  );
});

test('a pinned system interpreter is sealed too, and the sealed copy is what runs', async (t) => {
  const pluginDir = await tempDir(t);
  await writeFileWithMode(pluginDir, 'main.sh', 'echo "via:$0"\n', 0o644);
  // Pinned by its real path: /bin/sh is usually a link, and a link is never what gets hashed.
  const shellPath = await realpath('/bin/sh');
  const shell = await sha256File(shellPath);
  await using sealed = await sealPlugin(
    { name: 'p', path: 'main.sh', sha256: sha256('echo "via:$0"\n'), size: 14, interpreter: { path: shellPath, ...shell } },
    pluginDir,
  );
  t.is(sealed.command, join(sealed.dir, 'interpreter', basename(shellPath)));
  t.is((await stat(sealed.command)).mode & 0o777, 0o500);
  t.is((await run(sealed.command, sealed.args)).stdout, `via:${sealed.path}\n`);
  await t.throwsAsync(
    sealPlugin({ name: 'p', path: 'main.sh', sha256: sha256('echo "via:$0"\n'), size: 14, interpreter: { path: shellPath, sha256: sha256('not sh'), size: shell.size } }, pluginDir),
    { code: 'DIGEST_MISMATCH' },
  );
});

test('an interpreter that is neither absolute nor pinned is SEAL_FAILED rather than looked up from the working directory', async (t) => {
  const pluginDir = await tempDir(t);
  await writeFileWithMode(pluginDir, 'main.sh', 'echo hi\n', 0o644);
  await t.throwsAsync(sealPlugin({ name: 'p', path: 'main.sh', sha256: sha256('echo hi\n'), interpreter: { path: 'sh' } }, pluginDir), { code: 'SEAL_FAILED' });
});

test('a seal root the checks accept but nothing can be made in fails sealing with SEAL_FAILED, not a raw file-system error', async (t) => {
  if (!requireRoot(t) || !requireCheckoutReachable(t)) return;
  // The user's own seal root, 0500: safe (nothing above it is writable by others), yet no copy can be made in it.
  const outer = await sealRootDir(t);
  chmodSync(outer, 0o711);
  const root = join(outer, 'seal');
  mkdirSync(root);
  chownSync(root, NOBODY, NOBODY);
  chmodSync(root, 0o500);
  const digest = createHash('sha256').update(readFileSync('/bin/true')).digest('hex');
  const script = `const { sealPlugin } = await import(${JSON.stringify(sealModule)});
    try { await sealPlugin({ name: 'true', path: 'true', sha256: ${JSON.stringify(digest)} }, '/bin', { parentDir: ${JSON.stringify(root)} }); console.log('sealed'); }
    catch (e) { console.log(JSON.stringify({ code: e.code ?? null, message: e.message })); }`;
  const { stdout } = await run('/usr/bin/setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '--input-type=module', '-e', script]);
  const outcome = JSON.parse(stdout.trim()) as { code: string | null; message: string };
  t.is(outcome.code, 'SEAL_FAILED', outcome.message);
  t.regex(outcome.message, new RegExp(`${root}.*EACCES`));
});
