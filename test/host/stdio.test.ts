// go-plugin's GRPCStdio: a gatehouse plugin's stdout and stderr after its handshake reach the host.
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { launch, type LaunchOptions } from '../../src/index.js';
import { WORKER_COOKIE } from '../helpers/callback.js';
import { waitUntil } from '../helpers/process.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const stdioPluginScript = fileURLToPath(new URL('../fixtures/stdio-plugin.js', import.meta.url));

/** The stdio fixture plugin, launched with `options` (where its output should go). */
const launchStdioPlugin = (options: Pick<LaunchOptions, 'logger' | 'stdio' | 'onStdoutLine'>) =>
  launch({ command: process.execPath, args: [stdioPluginScript], cookie: WORKER_COOKIE, ...options });

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

test('stdio: what the plugin writes after its handshake reaches the host writers over GRPCStdio, byte for byte', async (t) => {
  const stdout = collect();
  const stderr = collect();
  const pipeLines: string[] = [];
  const logger = recordingLogger();
  await using _plugin = await launchStdioPlugin({
    logger,
    stdio: { stdout: stdout.stream, stderr: stderr.stream },
    onStdoutLine: (line) => pipeLines.push(line),
  });
  const expected = `first line on stdout\n${'x'.repeat(200 * 1024)}\nlast line on stdout\n`;
  t.true(await waitUntil(() => stdout.text().length >= expected.length, 10_000), `got ${stdout.text().length} bytes`);
  t.is(stdout.text(), expected);
  t.true(await waitUntil(() => stderr.text() === 'a line on stderr\n', 10_000), stderr.text());
  t.deepEqual(pipeLines, [], 'nothing came through the stdout pipe: it all went over GRPCStdio');
  // The plugin's hclog logger still writes to the real stderr, which the host parses into records.
  t.true(await waitUntil(() => logger.records.some((r) => r.message === 'a log record, not stdio'), 10_000));
  t.false(stderr.text().includes('a log record'));
});

test('stdio: without writers, forwarded stdout lines go to onStdoutLine and stderr lines to the logger', async (t) => {
  const lines: string[] = [];
  const logger = recordingLogger();
  await using _plugin = await launchStdioPlugin({ logger, onStdoutLine: (line) => lines.push(line) });
  t.true(await waitUntil(() => lines.includes('last line on stdout'), 10_000), lines.join('\n').slice(0, 200));
  t.is(lines[0], 'first line on stdout');
  t.true(await waitUntil(() => logger.records.some((r) => r.message === 'a line on stderr'), 10_000));
});
