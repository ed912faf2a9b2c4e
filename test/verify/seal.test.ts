// sealPlugin's failures: whatever goes wrong while copying, the caller gets a GatehouseError with a code.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { sealRootDir } from '../discover/temp-dir.js';
import { requireCheckoutReachable, requireRoot } from '../hostile/requires.js';

const run = promisify(execFile);
const NOBODY = 65534;
const sealModule = fileURLToPath(new URL('../../src/verify/seal.js', import.meta.url));

test('a seal root the checks accept but nothing can be made in fails sealing with SEAL_FAILED, not a raw file-system error', async (t) => {
  if (!requireRoot(t) || !requireCheckoutReachable(t)) return;
  // The user's own seal root, 0500: safe (nothing above it is writable by others), yet no copy can be made in it.
  const outer = await sealRootDir(t);
  chmodSync(outer, 0o711);
  const root = join(outer, 'seal');
  mkdirSync(root);
  chownSync(root, NOBODY, NOBODY);
  chmodSync(root, 0o500);
  const sha256 = createHash('sha256').update(readFileSync('/bin/true')).digest('hex');
  const script = `const { sealPlugin } = await import(${JSON.stringify(sealModule)});
    try { await sealPlugin({ name: 'true', path: 'true', sha256: ${JSON.stringify(sha256)} }, '/bin', { parentDir: ${JSON.stringify(root)} }); console.log('sealed'); }
    catch (e) { console.log(JSON.stringify({ code: e.code ?? null, message: e.message })); }`;
  const { stdout } = await run('/usr/bin/setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '--input-type=module', '-e', script]);
  const outcome = JSON.parse(stdout.trim()) as { code: string | null; message: string };
  t.is(outcome.code, 'SEAL_FAILED', outcome.message);
  t.regex(outcome.message, new RegExp(`${root}.*EACCES`));
});
