// What every hostile-plugin test checks: a typed error, a bounded time, nothing left running or on
// disk, and a host that still launches and calls a good plugin afterwards.
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext, TestFn } from 'ava';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { isGatehouseError, launch, type AuditEvent, type AuditLog, type GatehouseError, type GatehouseErrorCode, type LaunchOptions } from '../../src/index.js';
import { fakePluginScript, kvPluginScript } from '../helpers/paths.js';
import { isAlive, waitUntil } from '../helpers/process.js';

/**
 * A refusal that should come at once must come well before this. Typical refusals take well under a
 * second; the machine running the suite has two cores and runs many tests at once, hence the margin.
 */
export const AT_ONCE_MS = 20_000;
/** A start timeout no refusal that should come at once may wait for: it would blow AT_ONCE_MS. */
export const NEVER_MS = 50_000;

export const kvService = loadKVService();

/** The test fake plugin in `mode`, with the given environment. */
export function fake(mode: string, env: Record<string, string> = {}, extra: Partial<LaunchOptions> = {}): LaunchOptions {
  return { command: process.execPath, args: [fakePluginScript], cookie: KV_COOKIE, startTimeoutMs: NEVER_MS, ...extra, env: { FAKE_MODE: mode, ...env } };
}

/** An AuditLog that keeps the events in memory: tells a test the pid of a plugin that was refused. */
export function recordingAudit(): AuditLog & { events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return { events, record: (event) => void events.push(event), flush: async () => {}, close: async () => {} };
}

export interface Refusal {
  error: GatehouseError;
  ms: number;
}

/**
 * Launches `options`, expects a GatehouseError with `code` within `boundMs`, and checks that the
 * refused plugin's process is gone.
 */
export async function expectRefusal(
  t: ExecutionContext,
  options: LaunchOptions,
  code: GatehouseErrorCode,
  boundMs = AT_ONCE_MS,
): Promise<Refusal> {
  const audit = recordingAudit();
  const started = Date.now();
  const error = await t.throwsAsync(launch({ ...options, audit }));
  const ms = Date.now() - started;
  t.true(isGatehouseError(error, code), `expected ${code}, got ${String(error)}`);
  t.true(ms < boundMs, `refused after ${ms} ms, more than ${boundMs} ms`);
  for (const event of audit.events) {
    if (event.type === 'launch') t.false(isAlive(event.pid), `refused plugin ${event.pid} still runs`);
  }
  return { error: error as GatehouseError, ms };
}

/** The host is not damaged: a good plugin launches, answers a round trip and stops cleanly. */
export async function hostStillWorks(t: ExecutionContext): Promise<void> {
  const plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
  const kv = plugin.client(kvService);
  await kv.Put({ key: 'after', value: Buffer.from('still works') });
  t.is((await kv.Get({ key: 'after' })).value.toString(), 'still works');
  t.deepEqual(await plugin.kill(), { code: 0, signal: null });
}

/** Waits (boundedly) until none of `pids` runs; zombies of killed processes take a moment to be reaped. */
export async function allGone(pids: readonly number[], timeoutMs = AT_ONCE_MS): Promise<boolean> {
  return waitUntil(() => pids.every((pid) => !isAlive(pid)), timeoutMs);
}

/**
 * Points this test process's temporary directory (where launch() makes socket directories) at a
 * private one, and fails the file if anything is left in it once every test has run.
 */
export function privateTmpdir(test: TestFn): string {
  const outer = tmpdir();
  const dir = mkdtempSync(join(outer, 'gatehouse-hostile-'));
  // Like /tmp, others may pass through (a plugin run as another user reaches its socket directory
  // inside), but not list it.
  chmodSync(dir, 0o711);
  process.env.TMPDIR = dir;
  test.after.always('no socket or temporary directory is left behind', (t) => {
    process.env.TMPDIR = outer;
    const left = readdirSync(dir);
    rmSync(dir, { recursive: true, force: true });
    t.deepEqual(left, []);
  });
  return outer;
}
