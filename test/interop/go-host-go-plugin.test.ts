// Baseline for the interop suite: the go-plugin 1.0.1 host fixture driving the
// go-plugin 1.0.1 plugin fixture. If this fails, the fixtures are broken, not gatehouse.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { goTest, type GoBinaries } from './go-binaries.js';

const execFileAsync = promisify(execFile);

interface KvhostResult {
  put?: string;
  get?: string;
  reattachGet?: string;
  killMs?: number;
  negotiatedVersion?: number;
  error?: string;
}

interface KvhostRun {
  code: number;
  stdout: string;
  stderr: string;
  result: KvhostResult;
}

async function runKvhost(go: GoBinaries, args: string[]): Promise<KvhostRun> {
  let code = 0;
  let stdout: string;
  let stderr: string;
  try {
    ({ stdout, stderr } = await execFileAsync(go.kvhost, args, { timeout: 45_000 }));
  } catch (error) {
    const failure = error as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof failure.code !== 'number') {
      throw error;
    }
    code = failure.code;
    stdout = failure.stdout ?? '';
    stderr = failure.stderr ?? '';
  }
  const lines = stdout.split('\n').filter((line) => line !== '');
  if (lines.length !== 1 || lines[0] === undefined) {
    throw new Error(`kvhost must print exactly one line on stdout, got:\n${stdout}\nstderr:\n${stderr}`);
  }
  return { code, stdout, stderr, result: JSON.parse(lines[0]) as KvhostResult };
}

function assertRoundTrip(t: ExecutionContext, run: KvhostRun): void {
  t.is(run.code, 0, run.stderr);
  t.is(run.result.error, undefined);
  t.is(run.result.put, 'ok');
  t.is(run.result.get, 'world');
  t.is(run.result.negotiatedVersion, 1);
  t.is(typeof run.result.killMs, 'number');
  // A go-plugin plugin exits on the controller's Shutdown: no 2s wait, no SIGKILL.
  t.true((run.result.killMs ?? Infinity) < 2000, `killMs ${run.result.killMs}`);
}

/** hclog JSON lines from kvhost's stderr (its own, and the plugin's as re-logged by go-plugin). */
function hclogLines(stderr: string): Array<Record<string, unknown>> {
  const entries: Array<Record<string, unknown>> = [];
  for (const line of stderr.split('\n')) {
    try {
      const parsed: unknown = JSON.parse(line);
      if (parsed !== null && typeof parsed === 'object') {
        entries.push(parsed as Record<string, unknown>);
      }
    } catch {
      // not JSON (grpc-go may log plain text)
    }
  }
  return entries;
}

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
