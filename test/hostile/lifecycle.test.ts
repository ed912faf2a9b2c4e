// No orphans, even when the host is SIGKILLed and runs no exit hook.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { isGatehouseError, launch, type LaunchOptions } from '../../src/index.js';
import { goTest } from '../interop/go-binaries.js';
import { fakePluginScript, kvPluginScript, repoRoot } from '../helpers/paths.js';
import { isAlive, ptraceHoldAllowed, releasePtraceHold } from '../helpers/process.js';
import { allGone, AT_ONCE_MS, fake, privateTmpdir, recordingAudit } from './harness.js';
import { processesIn, sandboxNamespace } from './procfs.js';
import { requireTool, withoutTool } from './requires.js';

privateTmpdir(test);

const hostScript = fileURLToPath(new URL('../fixtures/host-until-killed.js', import.meta.url));

interface HostReport {
  pid: number;
  socketDir: string;
  answer?: string;
  debug: string[];
}

/**
 * Starts a host (argv: the command that runs it) that launches a plugin with `options` and calls it
 * once if `options.call` names a key; resolves with its report.
 */
async function startHost(
  t: ExecutionContext,
  argv: readonly string[],
  options: Omit<LaunchOptions, 'cookie'> & { call?: string },
): Promise<{ host: number; report: HostReport }> {
  const [file = '', ...args] = [...argv, hostScript, JSON.stringify(options)];
  // A host killed with SIGKILL leaves its temporary files (the plugin's socket directory, its links to the
  // plugin's socket): nothing is left alive to remove them. So it gets a temporary directory of its own.
  const hostTmp = mkdtempSync(join(tmpdir(), 'gatehouse-host-'));
  chmodSync(hostTmp, 0o711);
  t.teardown(() => rmSync(hostTmp, { recursive: true, force: true }));
  const host = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TMPDIR: hostTmp } });
  t.teardown(() => void host.kill('SIGKILL'));
  let output = '';
  const report = await new Promise<HostReport>((resolve, reject) => {
    host.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.endsWith('\n')) resolve(JSON.parse(output) as HostReport);
    });
    host.once('exit', (code) => reject(new Error(`host exited with ${code} before launching: ${output}`)));
  });
  t.teardown(() => void (isAlive(report.pid) && process.kill(report.pid, 'SIGKILL')));
  return { host: host.pid ?? 0, report };
}

goTest('lifecycle: a Go plugin dies with a host killed by SIGKILL (parent-death signal)', async (t, go) => {
  // Attack surface: a plugin that keeps running, holding its socket and secrets, after its host died.
  const { host, report } = await startHost(t, [process.execPath], { command: go.kvplugin });
  t.true(isAlive(report.pid));
  t.false(report.debug.some((message) => message.includes('unavailable')), 'setpriv --pdeathsig was used');
  process.kill(host, 'SIGKILL');
  t.true(await allGone([report.pid], AT_ONCE_MS), `Go plugin ${report.pid} outlived its SIGKILLed host`);
});

test('lifecycle: without setpriv the host says so in a debug record and launches as before', async (t) => {
  const withoutSetpriv = withoutTool(t, 'setpriv');
  if (!withoutSetpriv) return;
  const { host, report } = await startHost(t, [...withoutSetpriv, process.execPath], { command: process.execPath, args: [kvPluginScript] });
  t.true(report.debug.some((message) => message.startsWith('setpriv --pdeathsig is unavailable')), report.debug.join('\n'));
  t.true(isAlive(report.pid));
  // Today's behaviour: a gatehouse plugin still exits by itself when its host dies.
  process.kill(host, 'SIGKILL');
  t.true(await allGone([report.pid], AT_ONCE_MS), `plugin ${report.pid} outlived its SIGKILLed host`);
});

test('lifecycle: a sandboxed plugin and all it started die with a host killed by SIGKILL', async (t) => {
  // Attack surface: a grandchild in a session of its own, which no process-group signal reaches.
  if (!requireTool(t, 'setpriv') || !requireTool(t, 'bwrap')) return;
  const { host, report } = await startHost(t, [process.execPath], {
    command: process.execPath,
    args: [fakePluginScript],
    env: { FAKE_MODE: 'hostile-kv' },
    sandbox: { readOnlyPaths: [repoRoot] },
    call: 'escape',
  });
  const inside = sandboxNamespace(report.pid);
  t.truthy(inside, 'the plugin runs in a PID namespace of its own');
  const sandboxed = processesIn(inside ?? '');
  t.true(sandboxed.length >= 3, 'init, the plugin and the escaped grandchild');
  process.kill(host, 'SIGKILL');
  t.true(await allGone([report.pid, ...sandboxed], AT_ONCE_MS), 'a sandboxed process outlived its SIGKILLed host');
});

test('a failed launch whose plugin a tracer of its own keeps from being reaped still fails, with its own error, and leaves no directory', async (t) => {
  if (!(await ptraceHoldAllowed())) {
    t.log('skipped: this kernel does not let a process ptrace another of its user');
    t.pass();
    return;
  }
  // Attack: a plugin leaves a helper in a session of its own that seizes it with ptrace and never reaps it; killed,
  // the plugin stays a zombie only the tracer sees. The launch's cleanup waited for its exit without bound: the
  // launch never returned, not at its start timeout nor on its abort signal, and its directories stayed.
  const audit = recordingAudit();
  t.teardown(() => {
    for (const event of audit.events) if (event.type === 'launch') releasePtraceHold(event.pid);
  });
  const error = await t.throwsAsync(launch(fake('garbage', { FAKE_PTRACE_HOLD: '1' }, { audit, startTimeoutMs: 10_000 })));
  t.true(isGatehouseError(error, 'HANDSHAKE_INVALID'), String(error));
  t.deepEqual(readdirSync(tmpdir()), [], 'no socket, link or host directory is left');
});
