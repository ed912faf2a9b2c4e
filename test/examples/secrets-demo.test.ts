// `npm run demo` runs the secrets-server demo: every narrated step must pass and nothing may be left behind.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';

const execFileAsync = promisify(execFile);
const demo = fileURLToPath(new URL('../../examples/secrets-server/demo.js', import.meta.url));

test('the secrets demo mounts signed engines, survives a crash and a reload, refuses a tampered engine, and cleans up', async (t) => {
  t.timeout(120_000);
  const { stdout } = await execFileAsync(process.execPath, [demo], { timeout: 110_000, env: {} });
  t.notRegex(stdout, /^FAIL/m, stdout);
  t.regex(stdout, /^ok {3}mounted kv 1\.0\.0 at secret\/ .*sha256 [0-9a-f]{16}… signed by key [0-9A-F]{16}/m);
  t.regex(stdout, /^ok {3}restarted automatically/m);
  t.regex(stdout, /^ok {3}tampered transit 1\.1\.0 refused at mount: .*(SIZE_MISMATCH|DIGEST_MISMATCH)/m);
  t.regex(stdout, /^ok {3}reloaded secret\/ to kv 1\.1\.0 .*: 0 failed/m);
  t.regex(stdout, /^ok {3}audit verify: ok/m);
  t.regex(stdout, /^ok {3}the audit log holds no secret value/m);
  t.regex(stdout, /^ok {3}nothing left behind: 0 engine processes, temporary directory removed/m);
});
