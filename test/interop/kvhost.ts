// Runs the go-plugin 1.0.1 host fixture (test/interop/go/kvhost) and reads its one-line JSON report.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import type { GoBinaries } from './go-binaries.js';

const execFileAsync = promisify(execFile);

export interface KvhostResult {
  put?: string;
  get?: string;
  reattachGet?: string;
  killMs?: number;
  negotiatedVersion?: number;
  error?: string;
}

export interface KvhostRun {
  code: number;
  stdout: string;
  stderr: string;
  result: KvhostResult;
}

export async function runKvhost(go: GoBinaries, args: string[]): Promise<KvhostRun> {
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

export function assertRoundTrip(t: ExecutionContext, run: KvhostRun): void {
  t.is(run.code, 0, run.stderr);
  t.is(run.result.error, undefined);
  t.is(run.result.put, 'ok');
  t.is(run.result.get, 'world');
  t.is(run.result.negotiatedVersion, 1);
  t.is(typeof run.result.killMs, 'number');
  // A go-plugin plugin exits on the controller's Shutdown: no 2s wait, no SIGKILL.
  assertStoppedOnShutdown(t, run.stderr);
}

/**
 * go-plugin's Kill() logs this warning when the plugin outlived Shutdown and its 2 s grace and was
 * SIGKILLed: its absence is the behaviour, whatever the kill took on a loaded machine (the bench keeps the figure).
 */
export function assertStoppedOnShutdown(t: ExecutionContext, goHostStderr: string): void {
  t.false(goHostStderr.includes('plugin failed to exit gracefully'), 'the Go host had to SIGKILL the plugin');
}

/** hclog JSON lines from kvhost's stderr (its own, and the plugin's as re-logged by go-plugin). */
export function hclogLines(stderr: string): Array<Record<string, unknown>> {
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
