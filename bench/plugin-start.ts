// Plugin start as a host sees it: spawn to the handshake line on stdout. Measured with a plain spawn
// (not launch()) so that nothing of the host's own work is in it, the same way for the TypeScript and
// the Go plugin. The environment is what a gatehouse host gives: cookie, versions, client certificate.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KV_COOKIE } from '../examples/kv/kv.js';

/** One start: spawn to the line, and the page faults the plugin had taken by then. */
interface Start {
  ms: number;
  pageFaults: number | undefined;
}

/**
 * The minor page faults a process has taken so far (Linux: /proc/PID/stat), each a first touch of a
 * page of memory; undefined where that cannot be read. Unlike milliseconds, load does not move it.
 */
function minorPageFaults(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command's closing parenthesis start at the third, the state; minflt is the tenth.
    const count = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
    return Number.isInteger(count) ? count : undefined;
  } catch {
    return undefined;
  }
}

function oneStart(command: readonly string[], env: Record<string, string>): Promise<Start> {
  const [file, ...args] = command;
  if (file === undefined) return Promise.reject(new Error('no plugin command'));
  return new Promise((resolve, reject) => {
    const started = performance.now();
    // Its own process group, as launch() does, so that the kill below reaches everything it started.
    const child = spawn(file, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let stderr = '';
    let done = false;
    const finish = (error: Error | undefined, start?: Start): void => {
      if (done) return;
      done = true;
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        // already gone
      }
      // Resolved once the process is gone, so that starts never overlap.
      child.once('close', () => (error ? reject(error) : resolve(start as Start)));
    };
    child.stdout.on('data', (chunk: Buffer) => {
      const seen = performance.now();
      output += chunk.toString('utf8');
      if (output.includes('\n')) finish(undefined, { ms: seen - started, pageFaults: minorPageFaults(child.pid as number) });
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4000)));
    child.once('error', (error) => {
      done = true;
      reject(error);
    });
    child.once('exit', (code, signal) =>
      finish(new Error(`plugin exited before its handshake (${signal ?? code}): ${stderr}`)),
    );
  });
}

/**
 * The environment a gatehouse host gives the KV plugin, and nothing else (no PATH, as launch() gives
 * none): cookie, versions, port range, the host's certificate, a private directory.
 */
export function hostEnv(clientCertificatePem: string, socketDir: string): Record<string, string> {
  return {
    [KV_COOKIE.key]: KV_COOKIE.value,
    PLUGIN_PROTOCOL_VERSIONS: '1',
    PLUGIN_MIN_PORT: '10000',
    PLUGIN_MAX_PORT: '25000',
    PLUGIN_CLIENT_CERT: clientCertificatePem,
    PLUGIN_UNIX_SOCKET_DIR: socketDir,
    TMPDIR: socketDir,
  };
}

/** Spawn-to-handshake times of n starts of `command`, one after another, and the page faults of those that could be read. */
export async function pluginStarts(command: readonly string[], n: number, clientCertificatePem: string): Promise<{ ms: number[]; pageFaults: number[] }> {
  const socketDir = await mkdtemp(join(tmpdir(), 'gatehouse-bench-'));
  const env = hostEnv(clientCertificatePem, socketDir);
  try {
    const starts: Start[] = [];
    for (let i = 0; i < n; i++) starts.push(await oneStart(command, env));
    return { ms: starts.map((start) => start.ms), pageFaults: starts.flatMap((start) => (start.pageFaults === undefined ? [] : [start.pageFaults])) };
  } finally {
    await rm(socketDir, { recursive: true, force: true });
  }
}

/** The floor under any Node.js plugin's start: spawn of `node -e 0` to its exit. */
export async function nodeFloor(n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      // The same clean environment a gatehouse host gives its plugins.
      const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore', env: { PATH: process.env.PATH ?? '' } });
      child.once('error', reject);
      child.once('close', () => resolve());
    });
    times.push(performance.now() - started);
  }
  return times;
}
