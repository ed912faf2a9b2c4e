// go-plugin's GRPCStdio: a gatehouse plugin's stdout and stderr after its handshake reach the host.
import { PassThrough, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { launch, type LaunchOptions } from '../../src/index.js';
import { loadCallbackServices, WORKER_COOKIE } from '../helpers/callback.js';
import { waitUntil } from '../helpers/process.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const stdioPluginScript = fileURLToPath(new URL('../fixtures/stdio-plugin.js', import.meta.url));
const backpressurePluginScript = fileURLToPath(new URL('../fixtures/stdio-backpressure-plugin.js', import.meta.url));

/** The stdio fixture plugin, launched with `options` (where its output should go). */
const launchStdioPlugin = (options: Pick<LaunchOptions, 'logger' | 'stdio' | 'onStdoutLine'>, script = stdioPluginScript) =>
  launch({ command: process.execPath, args: [script], cookie: WORKER_COOKIE, ...options });

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

test('stdio: a plugin writing to process.stdout is told to wait while the host does not take its output, and drain comes when it does', async (t) => {
  // Attack surface: a host whose stdio writer is stuck must not make the plugin queue its output without bound.
  let stuck = true;
  const held: Array<() => void> = [];
  let received = 0;
  const stdout = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _encoding, done) {
      received += chunk.length;
      if (stuck) held.push(done);
      else done();
    },
  });
  const logger = recordingLogger();
  const record = (message: string) => logger.records.find((r) => r.message === message);
  await using _plugin = await launchStdioPlugin({ logger, stdio: { stdout } }, backpressurePluginScript);
  t.true(await waitUntil(() => record('stdout pushed back') !== undefined || record('stdout all written') !== undefined, 20_000));
  t.like(logger.records.find((r) => r.message.startsWith('stdout')), { message: 'stdout pushed back', fields: { fields: { round: 1 } } });
  // However long the host holds it, the plugin (which heeds write()) cannot get all its output out.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.is(record('stdout all written'), undefined, `the plugin wrote ${received} bytes to a host that took none`);
  stuck = false;
  held.splice(0).forEach((done) => done());
  t.true(await waitUntil(() => record('stdout all written') !== undefined, 20_000), 'all written once the host takes the output');
  const total = (record('stdout all written')?.fields.fields as { total?: number } | undefined)?.total;
  t.true(await waitUntil(() => received === total, 10_000), `the host got ${received} of ${String(total)} bytes`);
});

test('stdio: what a plugin writes just before process.exit() still reaches the host (on the real pipes, if its stream had no time)', async (t) => {
  // console.error then process.exit is how plugins say why they give up: the line used to die queued in the stdio stream.
  const lines: string[] = [];
  const plugin = await launch({
    command: process.execPath,
    args: [fileURLToPath(new URL('../fixtures/exit-after-print-plugin.js', import.meta.url))],
    cookie: WORKER_COOKIE,
    onStdoutLine: (line) => lines.push(line),
  });
  const { storage } = loadCallbackServices();
  await t.throwsAsync(plugin.client(storage).Put({ key: 'the-key', value: Buffer.alloc(0) }));
  t.like(await plugin.exited, { code: 3 });
  t.true(await waitUntil(() => plugin.stderrTail().some((line) => line.includes('fatal: cannot store the-key')), 10_000), plugin.stderrTail().join('\n'));
  t.true(await waitUntil(() => lines.includes('stdout before the exit'), 10_000), lines.join('\n'));
});
