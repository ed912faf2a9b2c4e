// Baseline for the interop suite: the go-plugin 1.0.1 host fixture driving the
// go-plugin 1.0.1 plugin fixture. If this fails, the fixtures are broken, not gatehouse.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { goTest } from './go-binaries.js';
import { assertRoundTrip, hclogLines, runKvhost } from './kvhost.js';

const execFileAsync = promisify(execFile);

goTest('Go host and Go plugin: put, get and kill over gRPC with AutoMTLS', async (t, go) => {
  const run = await runKvhost(go, ['--', go.kvplugin]);
  assertRoundTrip(t, run);
  t.is(run.result.reattachGet, undefined);

  const entries = hclogLines(run.stderr);
  // The host negotiated mTLS, and relayed the plugin's hclog line for the Put.
  t.true(entries.some((e) => e['@message'] === 'configuring client automatic mTLS'));
  t.true(entries.some((e) => e['@message'] === 'configuring server automatic mTLS'));
  t.true(
    entries.some((e) => e['@message'] === 'put' && e['@level'] === 'info' && e.key === 'hello'),
    run.stderr,
  );
  t.false(entries.some((e) => e['@message'] === 'plugin failed to exit gracefully'));
});

goTest('Go host and Go plugin: a reattached client reads the same store', async (t, go) => {
  const run = await runKvhost(go, ['-reattach-test', '--', go.kvplugin]);
  assertRoundTrip(t, run);
  t.is(run.result.reattachGet, 'world');
});

goTest('Go host: a plugin that prints no handshake is reported as one JSON error line', async (t, go) => {
  const run = await runKvhost(go, ['--', process.execPath, '-e', 'process.exit(0)']);
  t.is(run.code, 1);
  t.is(typeof run.result.error, 'string');
  t.is(run.result.put, undefined);
});

goTest('Go host: usage without a command is a JSON error', async (t, go) => {
  const run = await runKvhost(go, []);
  t.is(run.code, 1);
  t.regex(run.result.error ?? '', /usage: kvhost/);
});

goTest('Go plugin refuses to run without the magic cookie', async (t, go) => {
  const error = await t.throwsAsync(execFileAsync(go.kvplugin, [], { timeout: 10_000, env: {} }));
  t.regex(String((error as { stderr?: string } | undefined)?.stderr), /This binary is a plugin/);
});
