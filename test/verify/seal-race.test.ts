import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isGatehouseError } from '../../src/errors.js';
import { sha256File } from '../../src/verify/hash.js';
import { sealPlugin } from '../../src/verify/seal.js';
import { sealRootDir, tempDir, writeFileWithMode } from '../discover/temp-dir.js';

/** Runs in its own process, so it swaps the plugin truly in parallel with us: by rename, then by overwrite in place. */
const SWAPPER = `
const fs = require('node:fs');
const [plugin, good, evil] = process.argv.slice(1);
for (let i = 0; ; i++) {
  const bytes = i % 2 === 0 ? evil : good;
  try {
    if (i % 4 < 2) {
      fs.writeFileSync(plugin + '.next', bytes, { mode: 0o755 });
      fs.renameSync(plugin + '.next', plugin);
    } else {
      fs.writeFileSync(plugin, bytes);
    }
  } catch {
    // ETXTBSY while the kernel execs the script: an attacker just tries again, and so must this loop.
  }
}`;

/** Enough launches to land many times on either side of a swap. */
const LAUNCHES = 250;

const REFUSALS = new Set(['DIGEST_MISMATCH', 'SIZE_MISMATCH', 'FILE_NOT_FOUND']);

interface Attack {
  dir: string;
  pluginDir: string;
  marker: string;
  good: string;
  evil: string;
  entry: { name: string; path: string; sha256: string; size: number };
}

/** A plugin directory holding the signed script, and a different script of the same size that leaves a marker. */
async function prepare(t: ExecutionContext): Promise<Attack> {
  const dir = await tempDir(t);
  const pluginDir = join(dir, 'plugins');
  await mkdir(pluginDir, { mode: 0o700 });
  const marker = join(dir, 'marker');
  const evil = `#!/bin/sh\n: > '${marker}'\necho evil\n`;
  const goodCore = '#!/bin/sh\necho good\n#';
  const good = `${goodCore}${'-'.repeat(evil.length - goodCore.length - 1)}\n`;
  t.is(good.length, evil.length);
  await writeFileWithMode(pluginDir, 'plugin', good, 0o755);
  const sha256 = createHash('sha256').update(good).digest('hex');
  return { dir, pluginDir, marker, good, evil, entry: { name: 'plugin', path: 'plugin', sha256, size: good.length } };
}

/** Keeps swapping the plugin until the returned function is called. */
function startSwapping(t: ExecutionContext, attack: Attack): () => void {
  const swapper = spawn(process.execPath, ['-e', SWAPPER, join(attack.pluginDir, 'plugin'), attack.good, attack.evil], { stdio: 'ignore' });
  const stop = () => {
    // A swapper that died early would make both tests below prove nothing.
    t.is(swapper.exitCode, null, 'the swapping loop stopped before the test ended');
    swapper.kill('SIGKILL');
  };
  t.teardown(() => swapper.kill('SIGKILL'));
  return stop;
}

/** Runs `command` directly (no shell) and gives its stdout; `busy` is what to do when Linux says ETXTBSY. */
function launch(command: string, args: readonly string[], busy: 'throw' | 'ignore'): Promise<string | undefined> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch (error) {
      // The swapper has the original file open for writing; that start is lost, not the attack.
      if (busy === 'ignore' && (error as NodeJS.ErrnoException).code === 'ETXTBSY') return resolve(undefined);
      throw error;
    }
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', () => resolve(undefined));
    child.on('close', () => resolve(stdout));
  });
}

test.serial('the attack works on a host that hashes the plugin path and then executes that path', async (t) => {
  const attack = await prepare(t);
  const stop = startSwapping(t, attack);
  // Stops at the first success (usually within dozens of tries); the ceiling only matters on a loaded machine.
  const deadline = Date.now() + 30_000;
  let attempts = 0;
  while (!existsSync(attack.marker) && Date.now() < deadline) {
    attempts += 1;
    // go-plugin's SecureConfig: check the digest at the path, then start whatever is at the path now.
    const digest = await sha256File(join(attack.pluginDir, 'plugin')).catch(() => undefined);
    if (digest?.sha256 === attack.entry.sha256) await launch(join(attack.pluginDir, 'plugin'), [], 'ignore');
  }
  stop();
  t.log(`check-then-exec ran the other bytes after ${attempts} attempts`);
  t.true(existsSync(attack.marker), 'the swapping loop never got unverified bytes run; the sealed test below would prove nothing');
});

test.serial('while the plugin is swapped by rename and by overwrite, hundreds of sealed launches never run the other bytes', async (t) => {
  const attack = await prepare(t);
  const sealParent = await sealRootDir(t);
  const stop = startSwapping(t, attack);
  const counts = { launchedGood: 0, launchedOther: 0, refused: 0, byCode: {} as Record<string, number> };
  // A count of launches, not a time budget: a loaded 2-core machine makes each launch slower, not fewer.
  // The deadline only stops a machine so slow that the test would hit ava's timeout.
  t.timeout(180_000);
  const deadline = Date.now() + 150_000;
  for (let i = 0; i < LAUNCHES && Date.now() < deadline; i++) {
    try {
      await using sealed = await sealPlugin(attack.entry, attack.pluginDir, { parentDir: sealParent });
      // ETXTBSY here would mean the sealed copy is still open for writing: a bug, so it fails the test.
      const stdout = await launch(sealed.command, sealed.args, 'throw');
      if (stdout === 'good\n') counts.launchedGood += 1;
      else counts.launchedOther += 1;
    } catch (error) {
      if (!isGatehouseError(error) || !REFUSALS.has(error.code)) throw error;
      counts.refused += 1;
      counts.byCode[error.code] = (counts.byCode[error.code] ?? 0) + 1;
    }
  }
  stop();
  t.log(JSON.stringify(counts));
  t.false(existsSync(attack.marker), 'a sealed launch ran bytes that were not verified');
  t.is(counts.launchedOther, 0);
  t.is(counts.launchedGood + counts.refused, LAUNCHES, 'the machine was too slow to run the launches in 150 s');
  t.true(counts.launchedGood > 0, 'no launch ran the signed bytes');
  t.true(counts.refused > 0, 'the swapping never showed; the attack did not happen');
  await rm(sealParent, { recursive: true });
});
