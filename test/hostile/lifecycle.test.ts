// No orphans, even when the host is SIGKILLed and runs no exit hook.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { goTest } from '../interop/go-binaries.js';
import { kvPluginScript } from '../helpers/paths.js';
import { isAlive } from '../helpers/process.js';
import { allGone, AT_ONCE_MS, privateTmpdir } from './harness.js';
import { requireTool } from './requires.js';

privateTmpdir(test);

const hostScript = fileURLToPath(new URL('../fixtures/host-until-killed.js', import.meta.url));

interface HostReport {
  pid: number;
  socketDir: string;
  debug: string[];
}

/** Starts a host (argv: the command that runs it) that launches `plugin`; resolves with its report. */
async function startHost(t: ExecutionContext, argv: readonly string[], plugin: readonly string[]): Promise<{ host: number; report: HostReport }> {
  const [file = '', ...args] = [...argv, hostScript, ...plugin];
  const host = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void host.kill('SIGKILL'));
  let output = '';
  const report = await new Promise<HostReport>((resolve, reject) => {
    host.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.endsWith('\n')) resolve(JSON.parse(output) as HostReport);
    });
    host.once('exit', (code) => reject(new Error(`host exited with ${code} before launching: ${output}`)));
  });
  // The directory of a host killed with SIGKILL stays behind: nothing is left alive to remove it.
  t.teardown(() => rmSync(report.socketDir, { recursive: true, force: true }));
  t.teardown(() => void (isAlive(report.pid) && process.kill(report.pid, 'SIGKILL')));
  return { host: host.pid ?? 0, report };
}

goTest('lifecycle: a Go plugin dies with a host killed by SIGKILL (parent-death signal)', async (t, go) => {
  // Attack surface: a plugin that keeps running, holding its socket and secrets, after its host died.
  const { host, report } = await startHost(t, [process.execPath], [go.kvplugin]);
  t.true(isAlive(report.pid));
  t.false(report.debug.some((message) => message.includes('unavailable')), 'setpriv --pdeathsig was used');
  process.kill(host, 'SIGKILL');
  t.true(await allGone([report.pid], AT_ONCE_MS), `Go plugin ${report.pid} outlived its SIGKILLed host`);
});

test('lifecycle: without setpriv the host says so in a debug record and launches as before', async (t) => {
  const unshare = requireTool(t, 'unshare');
  const setpriv = unshare && requireTool(t, 'setpriv');
  if (!unshare || !setpriv) return;
  // In a private mount namespace where setpriv is /dev/null, which nobody can execute.
  const hide = `mount --bind /dev/null ${setpriv} && exec "$@"`;
  const { host, report } = await startHost(t, [unshare, '-rm', '/bin/sh', '-c', hide, 'sh', process.execPath], [process.execPath, kvPluginScript]);
  t.true(report.debug.some((message) => message.startsWith('setpriv --pdeathsig is unavailable')), report.debug.join('\n'));
  t.true(isAlive(report.pid));
  // Today's behaviour: a gatehouse plugin still exits by itself when its host dies.
  process.kill(host, 'SIGKILL');
  t.true(await allGone([report.pid], AT_ONCE_MS), `plugin ${report.pid} outlived its SIGKILLed host`);
});
