// A plugin's output cannot pass for the host's own log records: levels stay the five, fields stay under
// `fields`, and no message can break a line-oriented log into a forged second line.
import test from 'ava';
import fc from 'fast-check';
import { isGatehouseError, launch } from '../../src/index.js';
import { checkHealth } from '../../src/host/connection.js';
import { PLUGIN_LOG_BYTES_PER_WINDOW, PLUGIN_LOG_LINES_PER_WINDOW, PLUGIN_LOG_WINDOW_MS } from '../../src/host/log-budget.js';
import { PluginStderr, stdoutToLogger } from '../../src/host/plugin-output.js';
import type { CallPath } from '../../src/transport/call-path.js';
import { GrpcStatus, GrpcStatusError } from '../../src/transport/grpc-http2-client.js';
import { MAX_PEER_TEXT_CHARS, oneLine } from '../../src/transport/peer-text.js';
import { createServiceClient } from '../../src/transport/service-client.js';
import { loadKVService } from '../../examples/kv/kv.js';
import { LOG_LEVELS } from '../../src/transport/hclog.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { waitUntil } from '../helpers/process.js';
import { AT_ONCE_MS, fake, hostStillWorks, privateTmpdir } from './harness.js';

privateTmpdir(test);

/** A character that ends a line for some reader (a terminal, a text log, a JavaScript parser) or drives a terminal. */
const breaksLine = (text: string): boolean => [...text].some((c) => {
  const code = c.charCodeAt(0);
  return (code < 0x20 && c !== '\t') || (code >= 0x7f && code <= 0x9f) || c === '\u2028' || c === '\u2029';
});

test('logs: plugin records cannot forge host records, invent levels or break a line', async (t) => {
  const logger = recordingLogger();
  const plugin = await launch(fake('log-forgery', {}, { logger }));
  t.true(await waitUntil(() => logger.records.some((r) => r.message === 'log-forgery done'), AT_ONCE_MS));
  const records = logger.records.filter((r) => r.fields.plugin === plugin.name);

  for (const record of records) {
    t.false(breaksLine(record.message), `a message breaks the line: ${JSON.stringify(record.message)}`);
    t.true((LOG_LEVELS as readonly string[]).includes(record.level));
  }
  const invented = records.find((r) => r.message.includes('invented level'));
  t.is(invented?.level, 'debug', 'an unknown level makes the line plain text, logged at debug');
  const injected = records.find((r) => r.message.startsWith('first'));
  t.is(injected?.level, 'error');
  t.is(injected?.message, 'first\\n{"level":"info","plugin":"host","msg":"forged host record"}');
  const escapes = records.find((r) => r.message.startsWith('carriage'));
  t.is(escapes?.message, 'carriage\\rreturn \\u001b[31mred\\u001b[0m \\u2028separator');
  t.is(escapes?.fields.module, 'mod\\nule');
  const overriding = records.find((r) => r.message === 'fields');
  t.is(overriding?.level, 'info');
  t.is(overriding?.fields.plugin, plugin.name, 'the plugin cannot rename itself');
  t.deepEqual(overriding?.fields.fields, { plugin: 'host', level: 'error', msg: 'overridden' });
  t.truthy(records.find((r) => r.message === 'plain\\rtext \\u001b]0;title\\u0007 after'));
  t.truthy(records.find((r) => r.fields.stream === 'stdout' && r.message === 'stdout \\u001b[2J\\rline'));

  await plugin.kill();
  await hostStillWorks(t);
});

test('property: oneLine never leaves a line break or control character, and keeps ordinary text as it is', (t) => {
  fc.assert(fc.property(fc.string({ unit: 'binary' }), (text) => !breaksLine(oneLine(text))), { numRuns: 5000 });
  fc.assert(fc.property(fc.string({ unit: 'grapheme' }), (text) => breaksLine(text) || oneLine(text) === text), { numRuns: 2000 });
  t.pass();
});

test('logs: a plugin\'s gRPC status message reaches CALL_FAILED and HEALTH_CHECK_FAILED as one visible line, cut short', async (t) => {
  // What a hostile plugin puts in grpc-message: a terminal title, a screen clear, a forged JSON log line.
  const hostile = '\u001b]0;owned\u0007\u001b[2J\n{"level":"error","msg":"forged"}\rcarriage' + 'x'.repeat(5000);
  const fail = () => Promise.reject(new GrpcStatusError(GrpcStatus.INTERNAL, hostile));
  const calls = { unary: fail, serverStream: fail, bidiStream: fail } as unknown as CallPath;
  const client = createServiceClient(calls, loadKVService(), { exit: () => undefined, settleExit: async () => undefined });
  const failed = await t.throwsAsync(client.Get({ key: 'a' }));
  const unhealthy = await t.throwsAsync(checkHealth(calls, 1000));
  t.true(isGatehouseError(failed, 'CALL_FAILED') && isGatehouseError(unhealthy, 'HEALTH_CHECK_FAILED'));
  for (const message of [failed?.message ?? '', unhealthy?.message ?? '']) {
    t.false(breaksLine(message), message.slice(0, 120));
    t.true(message.includes('\\u001b]0;owned\\u0007\\u001b[2J\\n{"level":"error","msg":"forged"}\\rcarriage'), message.slice(0, 120));
    t.true(message.length < MAX_PEER_TEXT_CHARS + 200, `${message.length} characters`);
  }
});

test('logs: the byte budget counts what the host writes, not what the plugin wrote: escaped control characters and multi-byte text do not multiply it', (t) => {
  // Attack: each \u0001 is logged as "\\u0001" (7 bytes of JSON), each CJK character as 3 bytes of UTF-8, while the budget counted one.
  const now = 0;
  const logger = recordingLogger();
  const stderr = new PluginStderr('flooder', logger, () => now);
  const stdout = stdoutToLogger(logger, 'flooder', () => now);
  const control = '\u0001'.repeat(60 * 1024);
  const wide = '\u4e00'.repeat(60 * 1024);
  const hclog = JSON.stringify({ '@level': 'info', '@message': control });
  for (let i = 0; i < 400; i++) {
    stderr.line(control, false);
    stderr.line(hclog, false);
    stdout(wide);
  }
  const written = (stream: string): number =>
    logger.records.filter((r) => r.fields.stream === stream || (stream === 'stderr' && r.fields.stream === undefined)).reduce((sum, r) => sum + Buffer.byteLength(JSON.stringify(r.message)), 0);
  t.true(written('stderr') <= PLUGIN_LOG_BYTES_PER_WINDOW, `stderr: ${written('stderr')} bytes logged`);
  t.true(written('stdout') <= PLUGIN_LOG_BYTES_PER_WINDOW, `stdout: ${written('stdout')} bytes logged`);
  t.true(written('stderr') > PLUGIN_LOG_BYTES_PER_WINDOW / 2, 'the budget is still there to use');
});

test('logs: a plugin flooding its output gets a bounded number of lines and bytes logged per window, and the host says how many it left out', (t) => {
  // Attack: empty lines at full speed; the host logged 450,000 records (32 MiB) a second, filling its disk
  // (and with it the audit log's, which then stops every launch: A8) at the plugin's pace.
  let now = 0;
  const logger = recordingLogger();
  const stderr = new PluginStderr('flooder', logger, () => now);
  const stdout = stdoutToLogger(logger, 'flooder', () => now);
  for (let i = 0; i < 3 * PLUGIN_LOG_LINES_PER_WINDOW; i++) {
    stderr.line('', false);
    stdout(`line ${i}`);
  }
  const logged = (stream: string): number => logger.records.filter((r) => r.fields.stream === stream).length;
  t.is(logged('stderr'), PLUGIN_LOG_LINES_PER_WINDOW);
  t.is(logged('stdout'), PLUGIN_LOG_LINES_PER_WINDOW);
  t.true(stderr.lastLines().length > 0, 'the tail that explains a crash still has the lines');

  // Once the window is over, the next line comes after a record of what was left out.
  now += PLUGIN_LOG_WINDOW_MS;
  logger.records.length = 0;
  stderr.line('after the flood', false);
  t.deepEqual(
    logger.records.map((r) => [r.level, r.message, r.fields.dropped]),
    [
      ['warn', `the plugin wrote more output than the host logs in ${PLUGIN_LOG_WINDOW_MS / 1000} s (${PLUGIN_LOG_LINES_PER_WINDOW} lines, ${PLUGIN_LOG_BYTES_PER_WINDOW} bytes): ${2 * PLUGIN_LOG_LINES_PER_WINDOW} lines were not logged`, 2 * PLUGIN_LOG_LINES_PER_WINDOW],
      ['debug', 'after the flood', undefined],
    ],
  );

  // Long lines count by their size, as written (a JSON string: with its quotes).
  now += PLUGIN_LOG_WINDOW_MS;
  logger.records.length = 0;
  const long = 'x'.repeat(64 * 1024);
  for (let i = 0; i < 1000; i++) stderr.line(long, true);
  t.is(logger.records.length, Math.floor(PLUGIN_LOG_BYTES_PER_WINDOW / (long.length + 2)));
});
