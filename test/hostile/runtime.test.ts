// Plugins that turn on the host after a good start: dying or hanging mid-call, overlong output,
// refusing to stop, leaving children behind.
import test from 'ava';
import { isGatehouseError, launch, type GatehouseError } from '../../src/index.js';
import { MAX_HANDSHAKE_LINE_BYTES } from '../../src/transport/handshake.js';
import { MAX_STDERR_LINE_BYTES } from '../../src/host/plugin-output.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { isAlive, waitUntil } from '../helpers/process.js';
import { allGone, AT_ONCE_MS, fake, hostStillWorks, kvService, privateTmpdir } from './harness.js';

privateTmpdir(test);

test('runtime: a plugin that dies mid-call fails the pending call at once with PLUGIN_EXITED', async (t) => {
  const plugin = await launch(fake('hostile-kv'));
  const kv = plugin.client(kvService);
  const started = Date.now();
  const error = await t.throwsAsync(kv.Get({ key: 'crash' }));
  t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
  t.deepEqual((error as GatehouseError).details.exitStatus, { code: null, signal: 'SIGKILL' });
  t.true(Date.now() - started < AT_ONCE_MS, `the pending call failed after ${Date.now() - started} ms`);
  const later = await t.throwsAsync(kv.Get({ key: 'x' }));
  t.true(isGatehouseError(later, 'PLUGIN_EXITED'), 'later calls fail fast too');
  t.deepEqual(await plugin.kill(), { code: null, signal: 'SIGKILL' });
  await hostStillWorks(t);
});

test('runtime: a call the plugin never answers fails at its deadline with CALL_FAILED (DEADLINE_EXCEEDED)', async (t) => {
  const plugin = await launch(fake('hostile-kv'));
  const kv = plugin.client(kvService);
  const started = Date.now();
  const error = await t.throwsAsync(kv.Get({ key: 'hang' }, { timeoutMs: 1000 }));
  const ms = Date.now() - started;
  t.true(isGatehouseError(error, 'CALL_FAILED'), String(error));
  t.is((error as GatehouseError).details.grpcCode, 4 /* DEADLINE_EXCEEDED */);
  t.true(ms >= 990 && ms < AT_ONCE_MS, `the 1000 ms deadline ended the call after ${ms} ms`);
  t.is((await kv.Get({ key: 'other' })).value.toString(), 'other', 'a hung call does not poison the connection');
  t.deepEqual(await plugin.kill(), { code: 0, signal: null });
  await hostStillWorks(t);
});

test('runtime: lines far longer than any limit are cut, and the next line arrives whole', async (t) => {
  const logger = recordingLogger();
  const stdout: string[] = [];
  const plugin = await launch(fake('long-lines', {}, { logger, onStdoutLine: (line) => stdout.push(line) }));
  const messages = (): string[] => logger.records.map((record) => record.message);
  t.true(await waitUntil(() => messages().includes('stderr after the long line') && stdout.includes('stdout after the long line'), AT_ONCE_MS));
  const long = logger.records.find((record) => record.fields.truncated === true);
  t.truthy(long, 'the 32 MiB stderr line was logged once, marked truncated');
  t.true((long?.message.length ?? Infinity) <= MAX_STDERR_LINE_BYTES);
  t.is(stdout.length, 2);
  t.true((stdout[0]?.length ?? Infinity) <= MAX_HANDSHAKE_LINE_BYTES, 'the 32 MiB stdout line was cut to the limit');
  t.is((await plugin.client(kvService).Get({ key: 'FAKE_MODE' })).value.toString(), 'long-lines');
  t.deepEqual(await plugin.kill(), { code: 0, signal: null });
  await hostStillWorks(t);
});

test('runtime: a plugin that ignores Shutdown and SIGTERM is SIGKILLed after the graces, in bounded time', async (t) => {
  // The fake plugin's "stubborn" mode, also used by test/host/launch.test.ts.
  const plugin = await launch(fake('stubborn', {}, { killGraceMs: 300 }));
  const started = Date.now();
  t.deepEqual(await plugin.kill(), { code: null, signal: 'SIGKILL' });
  const ms = Date.now() - started;
  t.true(ms >= 600 && ms < AT_ONCE_MS, `stopped after ${ms} ms`);
  t.false(isAlive(plugin.pid));
  await hostStillWorks(t);
});

test('runtime: a plugin that forks children and dies leaves no grandchild running', async (t) => {
  // Attack: a plugin leaving workers behind that keep running code nobody supervises.
  const plugin = await launch(fake('hostile-kv'));
  const kv = plugin.client(kvService);
  const pids = (await kv.Get({ key: 'children' })).value.toString().split(',').map(Number);
  t.is(pids.length, 2);
  t.true(pids.every(isAlive));
  // It answers, then exits 50 ms later: on a loaded machine the exit can come before its answer is read.
  await kv.Get({ key: 'exit' }).catch((error: unknown) => {
    if (!isGatehouseError(error, 'PLUGIN_EXITED')) throw error;
  });
  t.deepEqual(await plugin.exited, { code: 0, signal: null });
  t.true(await allGone(pids), `grandchildren ${pids.join(', ')} outlived their plugin`);
  await plugin.kill();
  await hostStillWorks(t);
});

test('runtime: kill() stops a plugin and the children it forked, even those ignoring SIGTERM', async (t) => {
  const plugin = await launch(fake('hostile-kv', {}, { killGraceMs: 300 }));
  const pids = (await plugin.client(kvService).Get({ key: 'children' })).value.toString().split(',').map(Number);
  t.true(pids.every(isAlive));
  await plugin.kill();
  t.true(await allGone([plugin.pid, ...pids]), 'a grandchild survived kill()');
  await hostStillWorks(t);
});
