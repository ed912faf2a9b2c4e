// A plugin's output cannot pass for the host's own log records: levels stay the five, fields stay under
// `fields`, and no message can break a line-oriented log into a forged second line.
import test from 'ava';
import fc from 'fast-check';
import { launch } from '../../src/index.js';
import { oneLine } from '../../src/host/plugin-output.js';
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
