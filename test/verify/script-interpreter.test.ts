// Issue 11 item 4: a script plugin's `#!` interpreter runs too, so it is checked when verifying and sealing.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { isGatehouseError } from '../../src/errors.js';
import { verifyPlugins } from '../../src/verify/installed-plugins.js';
import { parseShebang } from '../../src/verify/script-interpreter.js';
import { sealPlugin, type SealablePlugin } from '../../src/verify/seal.js';
import { runningAsRoot, sealRootDir, tempDir, writeFileWithMode } from '../discover/temp-dir.js';

const run = promisify(execFile);
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const NOBODY = 65534;

/**
 * A copy of /bin/sh that another user (nobody) owns, in a root-owned directory, so that its owner is the one
 * thing wrong with it (under /tmp the sticky directory would be): they can rewrite it after anything was signed.
 */
async function theirShell(t: ExecutionContext, name: string): Promise<{ dir: string; shell: string }> {
  const dir = await sealRootDir(t);
  const shell = join(dir, name);
  await copyFile('/bin/sh', shell);
  await chmod(shell, 0o755);
  await run('/bin/chown', [`${NOBODY}:${NOBODY}`, shell]);
  return { dir, shell };
}

/** Seals `entry` and, if that succeeds, runs what was sealed: 'sealed and ran', or why sealing refused. */
function sealAndRun(entry: SealablePlugin, pluginDir: string): Promise<unknown> {
  return sealPlugin(entry, pluginDir).then(
    async (sealed) => {
      await run(sealed.command, sealed.args).catch(() => undefined);
      await sealed.dispose();
      return 'sealed and ran';
    },
    (error: unknown) => error,
  );
}

test("a signed script whose #! names another user's interpreter is refused by sealing and by verify, and never runs", async (t) => {
  if (!runningAsRoot) {
    t.log('skipped: giving a file to another user needs root');
    t.pass();
    return;
  }
  // Attack: the interpreter is another user's file; they can rewrite it after the script was signed.
  const { shell: interpreter } = await theirShell(t, 'sh');
  const pluginDir = await tempDir(t);
  const marker = join(pluginDir, 'ran');
  const script = `#!${interpreter}\ntouch ${marker}\n`;
  await writeFileWithMode(pluginDir, 'plugin', script, 0o755);
  const entry = { name: 'plugin', path: 'plugin', sha256: sha256(script), size: script.length };
  const outcome = await sealAndRun(entry, pluginDir);
  t.true(isGatehouseError(outcome, 'FILE_BAD_OWNER'), String(outcome));
  t.false(existsSync(marker), "the other user's interpreter never ran");
  const [verified] = await verifyPlugins({ schema: 'gatehouse.manifest/v1', version: 1, expires: '2099-01-01T00:00:00Z', plugins: [entry] }, pluginDir);
  t.like(verified, { ok: false, error: { code: 'FILE_BAD_OWNER' } });
});

test("a #! chain is followed: an interpreter that is itself a script naming another user's file is refused, run directly, pinned or from the system, and never runs", async (t) => {
  if (!runningAsRoot) {
    t.log('skipped: giving a file to another user needs root');
    t.pass();
    return;
  }
  // Attack: the last link of the chain is another user's, and the kernel follows #! through several levels.
  const { dir: theirs, shell: evil } = await theirShell(t, 'evil');
  const pluginDir = await tempDir(t);
  const marker = join(pluginDir, 'ran');
  // Root's own, safe in itself: only its #! line leads on to the other user's file.
  const wrapperText = `#!${evil}\ntouch ${marker}\n`;
  const wrapper = await writeFileWithMode(theirs, 'wrapper', wrapperText, 0o755);
  const direct = `#!${wrapper}\n`;
  await writeFileWithMode(pluginDir, 'direct', direct, 0o755);
  await writeFileWithMode(pluginDir, 'script', 'echo hi\n', 0o644);
  const script = { path: 'script', sha256: sha256('echo hi\n'), size: 8 };
  const entries = [
    { name: 'direct', path: 'direct', sha256: sha256(direct), size: direct.length },
    { name: 'pinned', ...script, interpreter: { path: wrapper, sha256: sha256(wrapperText), size: wrapperText.length } },
    { name: 'system', ...script, interpreter: { path: wrapper } },
  ];
  for (const entry of entries) {
    const outcome = await sealAndRun(entry, pluginDir);
    t.true(isGatehouseError(outcome, 'FILE_BAD_OWNER'), `${entry.name}: ${String(outcome)}`);
    t.false(existsSync(marker), `${entry.name}: the other user's interpreter never ran`);
  }
  const verified = await verifyPlugins({ schema: 'gatehouse.manifest/v1', version: 1, expires: '2099-01-01T00:00:00Z', plugins: entries }, pluginDir);
  t.deepEqual(
    verified.map((result) => [result.name, result.ok ? 'ok' : result.error.code]),
    entries.map((entry) => [entry.name, 'FILE_BAD_OWNER']),
  );
});

test('a #! line with a relative interpreter, none, or no end within 256 bytes is SHEBANG_INVALID', (t) => {
  for (const head of ['#!sh\n', '#!   \n', `#!/${'x'.repeat(300)}`]) {
    t.throws(() => parseShebang('p', Buffer.from(head)), { code: 'SHEBANG_INVALID' }, head.slice(0, 20));
  }
});

test('the interpreter is the first word after #! and optional blanks, as the kernel splits it', (t) => {
  t.is(parseShebang('p', Buffer.from('#! /usr/bin/env node --flag\n')), '/usr/bin/env');
  t.is(parseShebang('p', Buffer.from('#!/bin/sh\techo\n')), '/bin/sh');
  t.is(parseShebang('p', Buffer.from('\x7fELF...')), undefined);
  t.is(parseShebang('p', Buffer.from('')), undefined);
});

test('parseShebang, on any bytes, returns an absolute path or nothing, or refuses with SHEBANG_INVALID', (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.string({ maxLength: 300 }).map((text) => new TextEncoder().encode(`#!${text}`))), (bytes) => {
      try {
        const interpreter = parseShebang('p', Buffer.from(bytes));
        return interpreter === undefined || (interpreter.startsWith('/') && !/[ \t\n]/.test(interpreter));
      } catch (error) {
        return isGatehouseError(error, 'SHEBANG_INVALID');
      }
    }),
  );
  t.pass();
});
