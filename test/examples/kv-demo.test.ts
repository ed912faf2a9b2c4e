// `npm run demo` runs this host: it must launch the KV plugin over mTLS, Put, Get and kill it.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';

const execFileAsync = promisify(execFile);
const demoHost = fileURLToPath(new URL('../../examples/kv/host.js', import.meta.url));

test('the KV demo shows a pinned mTLS launch, Put, Get and a clean kill', async (t) => {
  const { stdout } = await execFileAsync(process.execPath, [demoHost], { timeout: 30_000 });
  t.regex(stdout, /^launched plugin\.js \(pid \d+\)/m);
  t.regex(stdout, /mutual TLS; plugin certificate pinned, sha256 [0-9a-f]{64}/);
  t.regex(stdout, /plugin log \(info\): put \{"key":"greeting","bytes":20\}/);
  t.regex(stdout, /Get greeting -> "hello from gatehouse"/);
  t.regex(stdout, /killed plugin: exit code 0/);
});
